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
text is shown for comparison.  Usage::

    python benchmarks/parse_speed.py                   # 5000 buses x 96 steps, best of 3
    python benchmarks/parse_speed.py --buses 1000 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import sys
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buses", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="parses per text; the fastest is kept")
    args = ap.parse_args(argv)

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
