"""Exception hierarchy: every error a user can cause says what and where."""

from __future__ import annotations

from dataclasses import dataclass


class VitrineError(Exception):
    """Base class for errors a user can act on (shown without a traceback)."""


@dataclass(frozen=True)
class Problem:
    """One validation finding, located to file, row and column."""

    file: str
    row: int | None  # 1-based data row (header excluded); None for whole-file problems
    column: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f" row {self.row}"
        if self.column is not None:
            where += f", field '{self.column}'"
        return f"{where}: {self.message}"


class DataValidationError(VitrineError):
    """Input data failed validation; ``problems`` lists every finding."""

    def __init__(self, problems: list[Problem], max_shown: int = 20) -> None:
        self.problems = list(problems)
        shown = "\n  ".join(str(p) for p in self.problems[:max_shown])
        more = len(self.problems) - max_shown
        tail = f"\n  ... and {more} more problems" if more > 0 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the input:\n  {shown}{tail}")


class NotFittedError(VitrineError):
    """A model was used before ``fit``."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"This {name} instance is not fitted yet. Call 'fit' with appropriate "
            "arguments before using it (or `vitrine fit`)."
        )


class MissingDependencyError(VitrineError):
    """An optional dependency is not installed."""


class NotFoundError(VitrineError):
    """A product or user id is unknown."""
