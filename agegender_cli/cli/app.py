"""The `agegender` Typer application: one command per module, registered lazily-light."""

import os
import shlex
import signal
import sys

import typer

from agegender_cli.cli import options as o
from agegender_cli.cli.common import Terminated, apply_shell_options, errors
from agegender_cli.cli.compare import compare
from agegender_cli.cli.dataset import dataset
from agegender_cli.cli.evaluate import evaluate
from agegender_cli.cli.info import info
from agegender_cli.cli.metavars import PlainCommand, PlainGroup
from agegender_cli.cli.predict import predict
from agegender_cli.cli.preprocess import preprocess
from agegender_cli.cli.train import train
from agegender_cli.errors import AgeGenderError
from agegender_cli.limits import current_limits

app = typer.Typer(
    name="agegender",
    help="Gender and age group of faces: dataset, preprocess, train, predict, evaluate, compare.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=PlainGroup,
)


@app.callback()
def root(
    version: o.Version = False,
    threads: o.Threads = None,
    quiet: o.Quiet = False,
    no_table: o.NoTable = False,
) -> None:
    """Gender and age group of faces: two architectures, trained, evaluated and compared."""
    apply_shell_options(threads, quiet, not no_table)  # each command applies them again with its own
    try:
        limit = current_limits().max_image_pixels
    except AgeGenderError as exc:
        errors.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    # OpenCV's own decoder limit (1 GP by default) for formats whose header PIL cannot read
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(limit))
    # FFmpeg's own lines about a damaged video ("huffman table decode error"): the tool says it in one line
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


for command in (dataset, preprocess, train, predict, evaluate, compare, info):
    app.command(cls=PlainCommand)(o.with_shell_options(command))


def main() -> None:
    from agegender_cli.cli import common

    common.invoked_as = shlex.join(["agegender", *sys.argv[1:]])
    # SIGTERM (kill, a batch scheduler) unwinds like Ctrl-C: temp files and partial outputs are removed.
    signal.signal(signal.SIGTERM, _terminate)
    app()


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()
