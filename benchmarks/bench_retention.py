"""Disk use of a home across refits (VITRINE_KEEP_MODELS) and of the served log, and what pruning drops.

    python benchmarks/bench_retention.py [WORK_DIR]

A 2,000-product synthetic shop is fitted once and saved six times (as six
refits would), then 1,200 logged search pages are served and the first
half of them aged past VITRINE_SERVED_DAYS. Prints one JSON line per part.
"""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from pathlib import Path

import pandas as pd

from vitrine.config import Settings
from vitrine.data.synth import generate
from vitrine.engine import Engine
from vitrine.saved import list_versions

PAGES = 1200


def _megabytes(paths) -> float:
    return round(sum(p.stat().st_size for p in paths if p.is_file()) / 2**20, 2)


def main(root: Path) -> None:
    warnings.simplefilter("ignore")
    shop, home = root / "shop", root / "home"
    if not shop.exists():
        generate(shop, products=2000, users=400, seed=3)
    shutil.rmtree(home, ignore_errors=True)  # a fresh home each run
    engine = Engine(home=home, settings=Settings(tower_seconds=10))
    engine.ingest(shop)
    engine.fit()
    for i in range(6):
        engine.version_ = f"29990101-00000{i}"  # six saves, as six refits would make
        engine.save()
    kept = list_versions(home)
    print(json.dumps({"saves": 6, "keep_models": engine.settings.keep_models,
                      "versions_kept": [v["version"] for v in kept], "mb_each": [v["megabytes"] for v in kept],
                      "models_mb": _megabytes((home / "models").rglob("*"))}))

    queries = pd.read_parquet(shop / "events.parquet")["query"].dropna().unique()
    for i in range(PAGES):
        engine.search(queries[i % len(queries)], k=10, user_id=f"u{i % 50}", request_id=f"r{i:05d}")
    engine.store.query("CHECKPOINT vitrine_served")
    rows = int(engine.store.query("SELECT count(*) AS n FROM served_rows")["n"][0])
    size = _megabytes(home.glob("store.served*"))
    engine.store.query("UPDATE vitrine_served.served_rows SET logged_at = logged_at - INTERVAL 400 DAY "
                       f"WHERE request_id < 'r{PAGES // 2:05d}'")
    days = engine.settings.served_days
    pruned = engine.store.prune_served(pd.Timestamp.now() - pd.Timedelta(days=days))
    print(json.dumps({"served_rows": rows, "served_mb": size, "kb_per_row": round(size * 1024 / rows, 3),
                      "served_days": days, "aged_rows_pruned": pruned}))
    engine.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".bench/retention"))
