"""Ingest throughput (`vitrine ingest`) and the store's size on disk.

Usage::

    python benchmarks/bench_ingest.py [--products 1000000] [--users 60000] [--sessions 6.7]
                                      [--data DIR] [--keep-data DIR]

Generates a synthetic shop without image files (``images=False``; the image
column still names files, so every product gets the counted "image file not
found" warning, which exercises that check at full size), or reuses ``--data``,
then ingests it into a fresh home. Prints one JSON object on the last line:
rows, seconds per stage (read + validate, write), rows per second, the DuckDB
file's size and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from vitrine.data.dataset import load_dataset
from vitrine.data.store import Store


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def run(products: int, users: int, sessions: float, data: str | Path | None = None,
        keep_data: str | Path | None = None, seed: int = 0) -> dict:
    """Generate (unless ``data`` is given) and ingest one shop; return the measurements."""
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        synth_s = None
        if data is None:
            from vitrine.data.synth import generate

            data = Path(keep_data) if keep_data else Path(tmp) / "shop"
            t0 = time.perf_counter()
            generate(data, products=products, users=users, seed=seed, sessions_per_user=sessions, images=False)
            synth_s = time.perf_counter() - t0
        data = Path(data)
        source_bytes = _size(data)
        home = Path(tmp) / "home"
        store = Store(home / "store.duckdb", secret="bench-secret")
        t0 = time.perf_counter()
        ds = load_dataset(data, tables=("products", "reviews", "events"), known_products=store._product_id_array())
        t1 = time.perf_counter()
        store.write(ds)
        t2 = time.perf_counter()
        counts = store.counts()
        store.close()
        db_bytes = _size(home / "store.duckdb")
        rows = counts["products"] + counts["reviews"] + counts["events"]
        # Re-ingest the products alone: the idempotent upsert path.
        store = Store(home / "store.duckdb", secret="bench-secret")
        t3 = time.perf_counter()
        store.write(type(ds)(products=ds.products, root=ds.root, pseudonymized=True))
        t4 = time.perf_counter()
        assert store.counts()["products"] == counts["products"]
        store.close()
    total = t2 - t0
    return {
        "benchmark": "ingest",
        "source_bytes": source_bytes,
        "counts": counts,
        "warnings": {f"{w.file}:{w.column}": w.count for w in ds.warnings},
        "synth_seconds": None if synth_s is None else round(synth_s, 1),
        "validate_seconds": round(t1 - t0, 2),
        "write_seconds": round(t2 - t1, 2),
        "ingest_seconds": round(total, 2),
        "rows_per_s": round(rows / total),
        "events_per_s": round(counts["events"] / total),
        "product_reupsert_seconds": round(t4 - t3, 2),
        "store_bytes": db_bytes,
        "store_mib": round(db_bytes / 2**20, 1),
        "bytes_per_event_row": round(db_bytes / max(counts["events"], 1), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--products", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=60_000)
    ap.add_argument("--sessions", type=float, default=6.7, help="sessions per user (6.7 gives about 10M events)")
    ap.add_argument("--data", help="ingest this existing dataset folder instead of generating one")
    ap.add_argument("--keep-data", help="generate into this folder and keep it")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.products, a.users, a.sessions, a.data, a.keep_data, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
