"""Parse speed of ``gridlang.grammar.parser.parse`` in lines per second.

Two texts of the same synthetic feeder (``feeder.py``, 5,000 buses x 96 steps
by default) are parsed, each ``--repeat`` times after a warm-up, and the
fastest run is kept:

* **table**: ``render_grid`` as the compile-scaling benchmark writes it, lines
  and loads as inline tables (one row per line);
* **statements**: ``render_grid_statements``, the same case with every load
  written as its own ``load ... { p = ...; q = ... }`` statement.

Lines are newline characters in the text.  The target
(:data:`TARGET_LINES_PER_S`) applies to the table text; the statement-heavy
text is shown for comparison.

``--bad-mb N`` instead times how fast a large bad input fails: a file of about
N MB of ``load ldI at bxI { p = 1 MW }`` statements, every one at an unknown
bus, is loaded (parse and resolve) once; it prints the seconds to the report,
the peak resident memory of the process and the report's size (at most
``MAX_ERRORS`` errors are collected).  Usage::

    python benchmarks/parse_speed.py                   # 5000 buses x 96 steps, best of 3
    python benchmarks/parse_speed.py --buses 1000 --repeat 5
    python benchmarks/parse_speed.py --bad-mb 5        # a 5 MB file of unknown buses
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from feeder import make_feeder, render_grid, render_grid_statements  # noqa: E402

from gridlang.grammar.parser import parse  # noqa: E402

#: lines per second the parser should reach on the table text
TARGET_LINES_PER_S = 20_000


def best_time(text: str, repeat: int) -> float:
    """Fastest of ``repeat`` parses of ``text``, in seconds (garbage collection paused while timing)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            parse(text, "<parse-speed>")
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best


BAD_HEAD = (
    "system s { base_power = 1 MVA; base_voltage = 10 kV; horizon = 4 h; step = 1 h }\n"
    "network n uses copper_plate {\n  bus b1 { slack }\n  bus b2\n}\n"
    "grid g at b1 { import_price = 10 $/MWh }\n"
)


def write_bad(path: Path, megabytes: float) -> int:
    """A case of about ``megabytes`` MB whose statements all name unknown buses; returns their number."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(BAD_HEAD)
        size, i = len(BAD_HEAD), 0
        while size < megabytes * 1e6:
            line = f"load ld{i} at bx{i} {{ p = 1 MW }}\n"
            f.write(line)
            size, i = size + len(line), i + 1
    return i


def time_bad(megabytes: float) -> int:
    """Load a large file of unknown buses once: seconds to the report, peak memory, report size."""
    import gridlang
    from gridlang.errors import GridError

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bad.grid"
        n = write_bad(path, megabytes)
        start = time.perf_counter()
        try:
            gridlang.load(path)
            report = ""
        except GridError as exc:
            report = exc.render()
        seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    print(f"{megabytes:g} MB, {n:,} statements at unknown buses: report after {seconds:.1f} s, "
          f"peak memory {peak_mb:,.0f} MB, report {len(report.encode()):,} bytes")
    print(report.splitlines()[-1] if report else "no error reported")
    return 0 if report else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buses", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="parses per text; the fastest is kept")
    ap.add_argument("--bad-mb", type=float, default=None, help="time a file of this many MB of statements at unknown buses instead")
    args = ap.parse_args(argv)
    if args.bad_mb is not None:
        return time_bad(args.bad_mb)

    f = make_feeder(args.buses, args.steps, args.seed)
    texts = {"table": render_grid(f), "statements": render_grid_statements(f)}
    parse(render_grid(make_feeder(12, args.steps, args.seed)), "<warm-up>")  # grammar load, imports

    print(f"parse speed, feeder {args.buses} buses x {args.steps} steps, best of {args.repeat}")
    print(f"{'text':<12}{'lines':>9}{'best s':>10}{'lines/s':>12}   target")
    ok = True
    for name, text in texts.items():
        lines = text.count("\n")
        seconds = best_time(text, args.repeat)
        rate = lines / seconds
        if name == "table":
            verdict = "met" if rate >= TARGET_LINES_PER_S else "BELOW"
            ok = rate >= TARGET_LINES_PER_S
            target = f">= {TARGET_LINES_PER_S:,} lines/s: {verdict}"
        else:
            target = "(for comparison)"
        print(f"{name:<12}{lines:>9,}{seconds:>10.3f}{rate:>12,.0f}   {target}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
