"""Shared pieces of the commands: consoles, error mapping, JSON output, progress bars."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape
from typer.exceptions import TyperException

from agegender_cli import stopping
from agegender_cli.errors import AgeGenderError
from agegender_cli.progress import Reporter

if TYPE_CHECKING:  # rich.progress, fileio and json are imported where they are used: `--help` needs none
    from rich.progress import Progress

F = TypeVar("F", bound=Callable[..., Any])
DEBUG_ENV = "AGEGENDER_DEBUG"

UNWRAPPED = 10_000  # the width of results written to a file or a pipe: no line is folded for a terminal


class ResultConsole(Console):
    """Results: as wide as the terminal, and at full width (nothing folded) when stdout is a file or pipe."""

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(UNWRAPPED, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


stdout = ResultConsole(soft_wrap=True)
stderr = Console(stderr=True)  # progress and messages: silent with --quiet
errors = Console(stderr=True)  # what went wrong: printed even with --quiet
invoked_as = ""  # the command line, set by the console entry point (reports record it)


class Shell:
    """The global options of the running command (--quiet, --no-table), set once per invocation."""

    quiet = False
    table = True


shell = Shell()


def apply_shell_options(threads: int | None, quiet: bool, table: bool) -> None:
    """Apply the global options: before any model import, so that --threads reaches torch and OpenCV."""
    if threads is not None:
        # read by torch and OpenCV when they are first imported; set directly where they already are
        os.environ["OMP_NUM_THREADS"] = os.environ["OPENCV_FOR_THREADS_NUM"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        if "cv2" in sys.modules:
            sys.modules["cv2"].setNumThreads(threads)
    shell.quiet, shell.table = quiet, table
    stderr.quiet = quiet


def show_table(stdout_taken: bool = False) -> bool:
    """Whether the stdout table is printed: not with --no-table, nor when stdout carries JSON or CSV."""
    return shell.table and not stdout_taken


def command_line() -> str:
    """How the running command was typed ("agegender compare ..."), or "" when it was called in-process."""
    return invoked_as


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that cleanup runs as it does for Ctrl-C."""


def fail_cleanly(fn: F) -> F:
    """Turn the domain exception into one red line on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # usage errors and exits: Typer prints them
        except AgeGenderError as exc:
            errors.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except Terminated:
            stopping.request_stop()
            errors.print("[yellow]terminated[/]")
            raise typer.Exit(143) from None
        except KeyboardInterrupt:
            stopping.request_stop()
            errors.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader (head, less) has gone: stop quietly, and keep Python from complaining at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except Exception as exc:  # the system refused (disk, memory, permissions), or an error not foreseen
            _explained(exc)

    return wrapper  # type: ignore[return-value]


def _explained(exc: Exception) -> None:
    """What the system refused (a full disk, memory, a permission), its cause and what to do in one line; any
    other error is internal (_internal)."""
    from agegender_cli.fileio import display
    from agegender_cli.system_errors import explain

    said = explain(exc)
    if said is None and isinstance(exc, OSError):
        said = (f"{display(exc.filename)}: " if exc.filename else "") + str(exc.strerror or exc)
    if said is None or os.environ.get(DEBUG_ENV):
        _internal(exc)
    errors.print(f"[bold red]error:[/] {escape(said)}", highlight=False, soft_wrap=True)
    raise typer.Exit(1) from None


def _internal(exc: Exception) -> None:
    """An error agegender did not foresee: one line asking for a report (AGEGENDER_DEBUG=1: the traceback)."""
    if os.environ.get(DEBUG_ENV):
        raise exc
    errors.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}; please report it "
                 f"with the command line ({DEBUG_ENV}=1 shows the traceback)", highlight=False, soft_wrap=True)
    raise typer.Exit(1) from None


def print_json(data: Any) -> None:
    """Only JSON on stdout, nothing else."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


class RichReporter(Reporter):
    """Progress bars and messages on stderr (none with --quiet); problems with inputs always."""

    def __init__(self, quiet: bool | None = None) -> None:
        self.quiet = shell.quiet if quiet is None else quiet
        self._progress: Progress | None = None
        self._task = None

    def message(self, text: str) -> None:
        if not self.quiet:
            stderr.print(f"[dim]{text}[/]", highlight=False)

    def problem(self, text: str) -> None:
        errors.print(f"[red]{escape(text)}[/]", highlight=False, soft_wrap=True)

    def start(self, description: str, total: int | None = None) -> None:
        if self.quiet:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.finish()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=stderr, transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, info="")

    def advance(self, steps: int = 1, **fields: object) -> None:
        if self._progress is not None and self._task is not None:
            info = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
            self._progress.update(self._task, advance=steps, **({"info": info} if fields else {}))

    def finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
