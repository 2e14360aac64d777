"""Training and encoding beside a busy neighbour: the thread governor against fixed threads.

Usage::

    python benchmarks/bench_threads.py [--neighbours 0 1] [--tower-seconds 30] [--texts 3000]
                                       [--lgb-rows 200000] [--repeat 1]

Each workload runs in a fresh process, once with ``VITRINE_ADAPTIVE_THREADS``
on (the default: vitrine.threads times one thread against all of them) and
once with it off (PyTorch's and LightGBM's own thread counts), while
``--neighbours`` processes spin on the CPU beside it:

* ``tower``: optimizer steps the image tower completes in its time budget
  (random 64 px images; more steps is more training for the same seconds);
* ``sasrec``: optimizer steps SASRec (dim 32) completes in the same budget
  (20,000 random sequences of 3-60 products out of 12,000);
* ``text``: MiniLM texts encoded per second (no cache);
* ``lightgbm``: seconds for 150 LambdaMART rounds on 200k random rows.

Prints a table and one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

WORKLOADS = ("tower", "sasrec", "text", "lightgbm")


def _spin() -> None:
    while True:
        pass


def tower(seconds: float) -> dict:
    import numpy as np
    import torch

    from vitrine.features.image import ImageTower

    steps = _count_steps(torch.optim.AdamW)
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(4000, 64, 64, 3), dtype=np.uint8)
    tv = rng.normal(size=(4000, 384)).astype(np.float32)
    t0 = time.perf_counter()
    ImageTower(max_seconds=seconds).fit(imgs, tv)
    return {"steps": steps[0], "seconds": round(time.perf_counter() - t0, 1)}


def _count_steps(optimizer) -> list[int]:
    steps = [0]
    step = optimizer.step

    def counted(self, *a, **k):
        steps[0] += 1
        return step(self, *a, **k)

    optimizer.step = counted
    return steps


def sasrec(seconds: float) -> dict:
    import numpy as np
    import torch

    from vitrine.personal.sequential import SASRec

    steps = _count_steps(torch.optim.Adam)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, 12_000, size=rng.integers(3, 60)) for _ in range(20_000)]
    t0 = time.perf_counter()
    SASRec(dim=32).fit(seqs, 12_000, max_seconds=seconds)
    return {"steps": steps[0], "seconds": round(time.perf_counter() - t0, 1)}


def text(n: int) -> dict:
    from vitrine.features.text import TextEncoder

    texts = [f"product {i} deluxe stainless steel kettle with a blue handle and {i % 7} speed settings"
             + " and more words" * (i % 5) for i in range(n)]
    enc = TextEncoder(cache_dir=None)
    enc.encode(texts[:64])  # load the model outside the timing
    t0 = time.perf_counter()
    enc.encode(texts)
    dt = time.perf_counter() - t0
    return {"per_s": round(n / dt, 1), "seconds": round(dt, 1)}


def lightgbm(rows: int) -> dict:
    import lightgbm as lgb
    import numpy as np

    from vitrine.rank.lambdamart import _train

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 60))
    y = (X[:, 0] + rng.normal(size=rows) > 1).astype(int) + (X[:, 1] > 1)
    data = lgb.Dataset(X, y, group=[50] * (rows // 50))
    t0 = time.perf_counter()
    _train({"objective": "lambdarank", "num_threads": 0, "verbose": -1}, data, 150)
    return {"seconds": round(time.perf_counter() - t0, 1)}


def _child(args: argparse.Namespace) -> None:
    fn = {"tower": lambda: tower(args.tower_seconds), "sasrec": lambda: sasrec(args.tower_seconds), "text": lambda: text(args.texts),
          "lightgbm": lambda: lightgbm(args.lgb_rows)}[args.child]
    print(json.dumps(fn()))


def measure(workload: str, adaptive: bool, args: argparse.Namespace) -> dict:
    env = dict(os.environ, VITRINE_ADAPTIVE_THREADS="true" if adaptive else "false")
    env.pop("OMP_NUM_THREADS", None)  # the libraries' own thread counts are what is compared
    cmd = [sys.executable, __file__, "--child", workload, "--tower-seconds", str(args.tower_seconds),
           "--texts", str(args.texts), "--lgb-rows", str(args.lgb_rows)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--neighbours", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    ap.add_argument("--tower-seconds", type=float, default=30.0, help="budget of the tower and SASRec")
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--lgb-rows", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return {}
    rows = []
    for k in args.neighbours:
        spinners = [mp.Process(target=_spin, daemon=True) for _ in range(k)]
        for p in spinners:
            p.start()
        try:
            for w in args.workloads:
                for r in range(args.repeat):
                    for adaptive in (False, True):  # fixed first, then governed, side by side in time
                        got = measure(w, adaptive, args)
                        rows.append({"workload": w, "neighbours": k, "governor": adaptive, "run": r,
                                     "load": round(os.getloadavg()[0], 1), **got})
                        print(json.dumps(rows[-1]), flush=True)
        finally:
            for p in spinners:
                p.terminate()
    print(f"{'workload':<10}{'neighbours':>11}{'fixed':>12}{'governed':>12}{'governed/fixed':>16}")
    key = {"tower": "steps", "sasrec": "steps", "text": "per_s", "lightgbm": "seconds"}
    for w in args.workloads:
        for k in args.neighbours:
            for r in range(args.repeat):
                f, g = (next(x for x in rows if x["workload"] == w and x["neighbours"] == k and x["run"] == r
                             and x["governor"] == a)[key[w]] for a in (False, True))
                print(f"{w:<10}{k:>11}{f:>12}{g:>12}{g / f:>16.2f}")
    out = {"cores": os.cpu_count(), "rows": rows}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
