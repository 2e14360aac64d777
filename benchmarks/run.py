"""`make bench`: run every benchmarks/bench_*.py in turn and print what each reports.

Each script measures vitrine beside its baselines in the same process and
prints JSON; BENCHMARKS.md records the numbers with the command that made them.
Set BENCH=name1,name2 to run a subset (names without the bench_ prefix).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    wanted = {w.strip() for w in os.environ.get("BENCH", "").split(",") if w.strip()}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        t0 = time.time()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"== {name}: exit {rc} in {time.time() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
