"""Small helpers the benchmark scripts share: text tables and package versions."""

from __future__ import annotations


def grid_table(header: list[str], rows: list[list[str]]) -> str:
    """Right-aligned text table."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def version(dist: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(dist)
    except PackageNotFoundError:
        return "not installed"


def ints(text: str) -> list[int]:
    """``"100, 1000,5000"`` -> ``[100, 1000, 5000]``: a comma-separated list of sizes."""
    return [int(v) for v in text.replace(" ", "").split(",") if v]
