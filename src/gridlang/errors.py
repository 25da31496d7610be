"""The one error type users see, with the position it comes from.

Every stage (parse, resolve, build, solve) reports a mistake in the user's
input as a :class:`GridError` carrying a :class:`Span`; a stage collects its
errors and raises them together as :class:`GridErrors`.  Rendering looks the
source line up in :data:`SOURCES`, which the parser fills as it reads text.

The output stays small whatever the input: a source line longer than
:data:`MAX_SHOWN` characters is cut around the caret, a long quoted name in a
message is shortened, and a :class:`Collector` stops its stage once it holds
more than :data:`MAX_ERRORS` errors.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: text of every source the parser has read, by the name used in its spans
SOURCES: dict[str, str] = {}

#: at most this many errors are collected and shown; a stage stops at the next one
MAX_ERRORS = 50
#: at most this many characters of a source line are shown (cut around the caret)
MAX_SHOWN = 100
#: a quoted piece of a message or hint longer than this is shortened
_MAX_QUOTED = 100
_MAX_TEXT = 400  # characters of a message or hint, after shortening quoted pieces
_ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Span:
    """A position in a source: 1-based line and column, and the width to underline."""

    file: str
    line: int
    col: int
    width: int = 1

    def __str__(self) -> str:
        """``file:line:col``; just ``file`` for a place without lines (the command line)."""
        return f"{self.file}:{self.line}:{self.col}" if self.line > 0 else self.file


NOWHERE = Span("<gridlang>", 0, 0)
#: where options given on the command line (or to the Python API) are reported
COMMAND_LINE = Span("<command line>", 0, 0)


class GridError(Exception):
    """A mistake in the user's input: where it is, what is wrong, how to fix it."""

    def __init__(self, span: Span, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.span = span
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """``file:line:col: message``, the source line, a caret, then the hint.

        A line longer than :data:`MAX_SHOWN` characters is cut around the caret,
        with ``…`` where text was left out; control characters are shown as
        their Unicode pictures and other unprintable ones as U+FFFD (one
        column each), so the caret stays aligned and the terminal untouched."""
        out = [f"{self.span}: error: {_short(self.message)}"]
        if self.span.line > 0:
            src = source_line(self.span.file, self.span.line)
            if src is not None:
                shown, caret = _excerpt(src, self.span.col, self.span.width)
                out += [f"    {shown}", f"    {caret}"]
        if self.hint:
            out.append(f"  hint: {_short(self.hint)}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


def _short(text: str) -> str:
    """``text`` with each long quoted piece cut in the middle, and at most about _MAX_TEXT characters."""

    def cut(m: re.Match) -> str:
        inner = m.group(1)
        return f"'{inner[:40]}{_ELLIPSIS}{inner[-12:]}' ({len(inner):,} characters)"

    text = re.sub(rf"'([^'\n]{{{_MAX_QUOTED + 1},}})'", cut, text)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + _ELLIPSIS


_CONTROL = {c: chr(0x2400 + c) for c in range(32)} | {0x7F: "\u2421", 0x09: " "}


def _excerpt(line: str, col: int, width: int) -> tuple[str, str]:
    """The part of ``line`` to show and the caret line under it (both without the indent).

    ``col`` is 1-based; a tab counts as one column, as the parser counts them.
    At most MAX_SHOWN characters of the line are kept: a window that starts
    about 40 characters before the caret, with ``…`` on a cut side."""
    line = line.removesuffix("\r")
    at = min(max(col, 1), len(line) + 1) - 1  # 0-based; one past the end points after the line
    start, end = 0, len(line)
    if end > MAX_SHOWN:
        start = max(0, min(at - 40, end - MAX_SHOWN))
        end = min(end, start + MAX_SHOWN)
    shown = "".join(c if c.isprintable() else "\ufffd" for c in line[start:end].translate(_CONTROL))  # no terminal controls
    lead = _ELLIPSIS if start > 0 else ""
    tail = _ELLIPSIS if end < len(line) else ""
    under = max(1, min(width, end - at))
    return lead + shown + tail, " " * (len(lead) + at - start) + "^" + "~" * (under - 1)


# where line N starts in each source: checkpoints (line, offset), kept sorted;
# errors are rendered in line order, so each lookup continues from the last
_LINE_STARTS: dict[str, tuple[str, list[tuple[int, int]]]] = {}


def source_line(file: str, line: int) -> str | None:
    """Line ``line`` (1-based, lines end at '\\n' as the parser counts them) of a read source, or None."""
    text = SOURCES.get(file)
    if text is None or line < 1:
        return None
    known = _LINE_STARTS.get(file)
    if known is None or known[0] is not text:
        known = _LINE_STARTS[file] = (text, [(1, 0)])
    points = known[1]
    i = bisect.bisect_right(points, (line, len(text) + 1)) - 1
    n, at = points[i]
    while n < line:
        nl = text.find("\n", at)
        if nl < 0:
            return None
        n, at = n + 1, nl + 1
    if points[i][0] != line:
        points.insert(i + 1, (line, at))
    if at >= len(text) and line > 1:
        return None  # after the last newline: no such line
    end = text.find("\n", at)
    return text[at : end if end >= 0 else len(text)]


class GridErrors(GridError):
    """Several errors of one stage, raised together; behaves like the first one.

    At most :data:`MAX_ERRORS` are shown.  ``stopped`` is true when the stage
    stopped looking once it had more than that (so there may be yet more)."""

    def __init__(self, errors: Iterable[GridError], stopped: bool = False) -> None:
        self.errors = sorted(errors, key=lambda e: (e.span.line > 0, e.span.file, e.span.line, e.span.col))  # the command line's first
        self.stopped = stopped
        first = self.errors[0]
        super().__init__(first.span, first.message, first.hint)

    def render(self) -> str:
        shown = self.errors[:MAX_ERRORS]
        body = "\n\n".join(GridError.render(e) for e in shown)
        n = len(self.errors)
        if self.stopped:  # the stage stopped at its (MAX_ERRORS + 1)th error: a lower bound
            more = n - len(shown)
            return body + f"\n\n… and at least {more} more error{'s' * (more != 1)}: checking stopped after {n} errors; fix these and check again"
        if n > len(shown):
            return body + f"\n\n… and {n - len(shown)} more errors ({n} errors)"
        return body + (f"\n\n{n} errors" if n > 1 else "")

    def __str__(self) -> str:
        return self.render()


class Collector:
    """Gathers the errors of one stage so they are reported together.

    Once it holds more than ``limit`` errors (default :data:`MAX_ERRORS`) it
    raises them at once, as a :class:`GridErrors` with ``stopped`` set: a large
    input full of mistakes fails fast instead of being checked to the end.
    Such an error passes through :meth:`extend` unchanged (a stage that catches
    GridError to collect it re-raises it)."""

    def __init__(self, limit: int = MAX_ERRORS) -> None:
        self.errors: list[GridError] = []
        self.limit = limit

    def add(self, span: Span, message: str, hint: str | None = None) -> None:
        self.errors.append(GridError(span, message, hint))
        self._check()

    def extend(self, error: GridError) -> None:
        if getattr(error, "stopped", False):
            raise error
        self.errors.extend(error.errors if isinstance(error, GridErrors) else [error])
        self._check()

    def _check(self) -> None:
        if len(self.errors) > self.limit:
            raise GridErrors(self.errors, stopped=True)

    def raise_if_any(self) -> None:
        if self.errors:
            raise GridErrors(self.errors)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None when nothing is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
