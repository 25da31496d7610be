"""The one error type users see, with the position it comes from.

Every stage (parse, resolve, build, solve) reports a mistake in the user's
input as a :class:`GridError` carrying a :class:`Span`; a stage collects its
errors and raises them together as :class:`GridErrors`.  Rendering looks the
source line up in :data:`SOURCES`, which the parser fills as it reads text.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

#: text of every source the parser has read, by the name used in its spans
SOURCES: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a source: 1-based line and column, and the width to underline."""

    file: str
    line: int
    col: int
    width: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Span("<gridlang>", 0, 0)


class GridError(Exception):
    """A mistake in the user's input: where it is, what is wrong, how to fix it."""

    def __init__(self, span: Span, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """``file:line:col: message``, the source line, a caret, then the hint."""
        out = [f"{self.span}: error: {self.message}"]
        text = SOURCES.get(self.span.file)
        if text is not None and self.span.line > 0:
            lines = text.splitlines()
            if self.span.line <= len(lines):
                src = lines[self.span.line - 1].rstrip("\n").expandtabs(1)
                out.append(f"    {src}")
                width = max(1, min(self.span.width, len(src) - self.span.col + 1))
                out.append("    " + " " * (self.span.col - 1) + "^" + "~" * (width - 1))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


class GridErrors(GridError):
    """Several errors of one stage, raised together; behaves like the first one."""

    def __init__(self, errors: Iterable[GridError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.span.file, e.span.line, e.span.col))
        first = self.errors[0]
        super().__init__(first.span, first.message, first.hint)

    def render(self) -> str:
        body = "\n\n".join(GridError.render(e) for e in self.errors)
        n = len(self.errors)
        return body + (f"\n\n{n} errors" if n > 1 else "")

    def __str__(self) -> str:
        return self.render()


class Collector:
    """Gathers the errors of one stage so they are reported together."""

    def __init__(self) -> None:
        self.errors: list[GridError] = []

    def add(self, span: Span, message: str, hint: str | None = None) -> None:
        self.errors.append(GridError(span, message, hint))

    def extend(self, error: GridError) -> None:
        self.errors.extend(error.errors if isinstance(error, GridErrors) else [error])

    def raise_if_any(self) -> None:
        if self.errors:
            raise GridErrors(self.errors)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
