"""gridlang: a declarative language and compiler for active distribution networks.

``import gridlang`` loads nothing heavy: ``load``, ``Case``, ``Result``, ``Span``,
``GridError`` and ``GridErrors`` are looked up on first use (module
``__getattr__``), so a decomposition worker that only needs numpy, scipy and
Clarabel never pays for linopy, xarray or pandas.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gridlang.case import Case, load
    from gridlang.errors import GridError, GridErrors, Span
    from gridlang.solvers.result import Result

__all__ = ["Case", "GridError", "GridErrors", "Result", "Span", "load"]
__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "Case": "gridlang.case",
    "load": "gridlang.case",
    "GridError": "gridlang.errors",
    "GridErrors": "gridlang.errors",
    "Span": "gridlang.errors",
    "Result": "gridlang.solvers.result",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # looked up once
        return value
    if not name.startswith("_"):  # a submodule used as an attribute (gridlang.solvers), as when __init__ imported them all
        try:
            return import_module(f"gridlang.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"gridlang.{name}":
                raise
    raise AttributeError(f"module 'gridlang' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
