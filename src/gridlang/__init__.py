"""gridlang: a declarative language and compiler for active distribution networks."""

from gridlang.case import Case, load
from gridlang.errors import GridError, GridErrors, Span
from gridlang.solvers.result import Result

__all__ = ["Case", "GridError", "GridErrors", "Result", "Span", "load"]
__version__ = "0.1.0"
