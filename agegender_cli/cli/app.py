"""The `agegender` Typer application: one command per module, registered lazily-light."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from typing import Annotated

import typer

from agegender_cli import __version__
from agegender_cli.cli.common import Terminated, stderr
from agegender_cli.cli.compare import compare
from agegender_cli.cli.dataset import dataset
from agegender_cli.cli.evaluate import evaluate
from agegender_cli.cli.predict import predict
from agegender_cli.cli.preprocess import preprocess
from agegender_cli.cli.train import train
from agegender_cli.errors import AgeGenderError
from agegender_cli.limits import current_limits

app = typer.Typer(
    name="agegender",
    help="Gender and age group of faces: dataset, preprocess, train, predict, evaluate, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agegender {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option(min=1, max=1024, help="CPU threads for torch and OpenCV (default: all cores).")
    ] = None,
) -> None:
    """Gender and age group of faces: two architectures, trained, evaluated and compared."""
    if threads is not None:
        # read by torch and OpenCV when they are first imported, which happens after this
        os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        limit = current_limits().max_image_pixels
    except AgeGenderError as exc:
        stderr.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    # OpenCV's own decoder limit (1 GP by default) for formats whose header PIL cannot read
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(limit))
    # FFmpeg's own lines about a damaged video ("huffman table decode error"): the tool says it in one line
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


app.command()(dataset)
app.command()(preprocess)
app.command()(train)
app.command()(predict)
app.command()(evaluate)
app.command()(compare)


def main() -> None:
    from agegender_cli.cli import common

    common.invoked_as = shlex.join(["agegender", *sys.argv[1:]])
    # SIGTERM (kill, a batch scheduler) unwinds like Ctrl-C: temp files and partial outputs are removed.
    signal.signal(signal.SIGTERM, _terminate)
    app()


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()
