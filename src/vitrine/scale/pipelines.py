"""Batch pipelines that shard over an executor (in-process or Ray).

- ``validate_sharded``: validate a large table (events, reviews) in shards;
  problems keep their row numbers in the whole file.
- ``ingest``: the store's ingest with the event log validated in shards.
- ``recommend_all``: precompute every shopper's recommendations (a nightly
  batch job) with the fitted model shipped to workers once.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from vitrine.data.dataset import Dataset, _drop_unknown, coerce_table, find_table, load_dataset, read_file
from vitrine.data.schema import TABLES
from vitrine.errors import DataValidationError, Problem


def _validate_shard(item: tuple[int, pd.DataFrame], *, table: str, file: str):
    offset, shard = item
    df, problems = coerce_table(shard.reset_index(drop=True), TABLES[table], file)
    moved = [replace(p, row=p.row + offset) if p.row is not None else p for p in problems]
    return df, moved


def validate_sharded(df: pd.DataFrame, table: str, file: str, executor, shards: int | None = None):
    """Validate ``df`` as ``table`` in shards; return (canonical frame, problems)."""
    from vitrine.scale.executor import shard_frame

    if table == "products":  # duplicate ids are a whole-table check
        return coerce_table(df, TABLES[table], file)
    n = shards or max(1, executor.parallelism * 2)
    parts = executor.map(_validate_shard, shard_frame(df, n), table=table, file=file)
    problems = [p for _, probs in parts for p in probs]
    frames = [f for f, _ in parts]
    return (pd.concat(frames, ignore_index=True) if frames else df), problems


def ingest(store, folder: str | Path, executor, shards: int | None = None) -> Dataset:
    """Validate a dataset folder (events in shards) and write it in one transaction."""
    folder = Path(folder)
    small = ("products", "reviews", "judgments")
    ds = load_dataset(folder, tables=small, known_products=store.product_ids()) \
        if any(find_table(folder, t) for t in small) else Dataset(root=folder.resolve())
    path = find_table(folder, "events")
    if path is not None:
        events, problems = validate_sharded(read_file(path), "events", path.name, executor, shards)
        if problems:
            raise DataValidationError(problems)
        known = store.product_ids() | (set(ds.products["product_id"]) if ds.products is not None else set())
        ds.events = _drop_unknown(events, known, path.name, ds.warnings)
    if ds.products is None and ds.reviews is None and ds.events is None and ds.judgments is None:
        raise DataValidationError(
            [Problem(str(folder), None, None, "no products, reviews, events or judgments tables")])
    store.write(ds)
    return ds


def _recommend_shard(user_keys: list[str], *, personal, k: int, exclude_seen: bool, ids: np.ndarray):
    rows = []
    for u in user_keys:
        items, scores = personal.recommend(u, k=k, exclude_seen=exclude_seen)
        for rank, (i, s) in enumerate(zip(items, scores, strict=True), start=1):
            rows.append((u, rank, ids[int(i)], float(s)))
    return rows


def recommend_all(engine, executor, k: int = 10, user_keys: list[str] | None = None, shards: int | None = None,
                  exclude_seen: bool = True) -> pd.DataFrame:
    """Top-k recommendations of every known shopper: columns user_id (key), rank, product_id, score."""
    engine._check()
    if user_keys is None:
        user_keys = engine.store.query("SELECT user_id FROM users ORDER BY user_id")["user_id"].tolist()
    n = shards or max(1, executor.parallelism * 2)
    chunks = [list(c) for c in np.array_split(np.asarray(user_keys, dtype=object), n) if len(c)]
    parts = executor.map(_recommend_shard, chunks, personal=engine.personal_, k=k,
                         exclude_seen=exclude_seen, ids=engine.catalog_.ids)
    flat = [r for part in parts for r in part]
    return pd.DataFrame(flat, columns=["user_id", "rank", "product_id", "score"])
