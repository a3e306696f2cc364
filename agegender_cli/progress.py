"""How long-running work reports progress, without knowing who displays it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Reporter:
    """Silent by default; the CLI passes one that draws Rich progress bars on stderr."""

    def message(self, text: str) -> None:
        """A line of information for the user (never the result)."""

    def problem(self, text: str) -> None:
        """A line about an input that cannot be used, shown at once (even where messages are not)."""

    def start(self, description: str, total: int | None = None) -> None:
        """Begin a task of `total` steps."""

    def advance(self, steps: int = 1, **fields: object) -> None:
        """Move the current task on."""

    def finish(self) -> None:
        """End the current task."""

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        self.start(description, total)
        try:
            for item in items:
                yield item
                self.advance()
        finally:
            self.finish()


SILENT = Reporter()
