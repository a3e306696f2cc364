"""The `agegender` Typer application: one command per module, registered lazily-light."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from agegender_cli import __version__
from agegender_cli.cli.compare import compare
from agegender_cli.cli.dataset import dataset
from agegender_cli.cli.evaluate import evaluate
from agegender_cli.cli.predict import predict
from agegender_cli.cli.preprocess import preprocess
from agegender_cli.cli.train import train

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
        int | None, typer.Option(min=1, help="CPU threads for torch and OpenCV (default: all cores).")
    ] = None,
) -> None:
    """Gender and age group of faces: two architectures, trained, evaluated and compared."""
    if threads is not None:
        # read by torch and OpenCV when they are first imported, which happens after this
        os.environ["OMP_NUM_THREADS"] = str(threads)


app.command()(dataset)
app.command()(preprocess)
app.command()(train)
app.command()(predict)
app.command()(evaluate)
app.command()(compare)


def main() -> None:
    app()
