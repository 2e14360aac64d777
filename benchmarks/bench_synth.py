"""Throughput of the synthetic marketplace (`vitrine synth`).

Usage::

    python benchmarks/bench_synth.py [--products 20000] [--users 5000] [--out DIR] [--no-images]

Prints one JSON object on the last line. Writes only into a temporary folder
(removed afterwards) or into ``--out`` when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from vitrine.data.synth import generate


def run(
    products: int,
    users: int,
    out: str | Path | None = None,
    seed: int = 0,
    lang: str = "en",
    images: bool = True,
) -> dict:
    """Generate one shop and measure rows per second.

    Returns a dict with counts, wall seconds per stage and throughput:
    ``products_per_s`` (product attributes, text and images), ``events_per_s`` (sessions,
    clicks and the events table) and ``rows_per_s`` over all tables.
    """
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        target = Path(out) if out is not None else Path(tmp) / "shop"
        t0 = time.perf_counter()
        s = generate(target, products=products, users=users, seed=seed, lang=lang, images=images)
        wall = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    t = s.timings
    product_s = t.get("products", 0.0) + t.get("images", 0.0) + t.get("catalog", 0.0)
    event_s = t.get("sessions", 0.0) + t.get("clicks", 0.0) + t.get("events", 0.0)
    rows = s.products + s.events + s.reviews + s.judgments
    return {
        "benchmark": "synth",
        "products": s.products,
        "users": s.users,
        "lang": lang,
        "images": images,
        "sessions": s.sessions,
        "requests": s.requests,
        "events": s.events,
        "reviews": s.reviews,
        "judgments": s.judgments,
        "seconds": round(wall, 3),
        "stage_seconds": t,
        "products_per_s": round(s.products / max(product_s, 1e-9)),
        "events_per_s": round(s.events / max(event_s, 1e-9)),
        "rows_per_s": round(rows / max(wall, 1e-9)),
        "disk_mb": round(disk / 2**20, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=20_000)
    ap.add_argument("--users", type=int, default=5_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lang", default="en")
    ap.add_argument("--out", default=None, help="keep the shop here instead of a temp folder")
    ap.add_argument("--no-images", action="store_true")
    a = ap.parse_args(argv)
    res = run(a.products, a.users, out=a.out, seed=a.seed, lang=a.lang, images=not a.no_images)
    sys.stdout.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
