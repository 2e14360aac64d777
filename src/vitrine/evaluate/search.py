"""`vitrine evaluate search`: rerank, retrieve and cross-modal protocols.

Trains on judgments with split=train (and events, if any), evaluates the
queries with split=test (all queries when there is no split). Baselines run
in the same process on the same split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitrine.data.dataset import Dataset, load_dataset
from vitrine.engine import Engine
from vitrine.evaluate.common import EvalReport, evaluation_engine, input_warnings, stable_half
from vitrine.evaluate.metrics import evaluate_rankings
from vitrine.results import top_k

PROTOCOLS = ("rerank", "retrieve", "cross-modal")
KEEP_CROSS_MODAL = ("product_id", "image")


def split_judgments(j: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "split" in j and j["split"].notna().any():
        return j[j["split"] == "train"], j[j["split"] == "test"]
    return j.iloc[:0], j


def strip_for_cross_modal(ds: Dataset) -> tuple[Dataset, np.ndarray]:
    """Blank every field but id and image of the hashed half; return it and the mask."""
    products = ds.products.copy()
    half = products["product_id"].map(stable_half).to_numpy(dtype=bool)
    for col in products.columns:
        if col not in KEEP_CROSS_MODAL:
            products.loc[half, col] = np.nan if products[col].dtype.kind == "f" else None
    hidden = set(products.loc[half, "product_id"])
    reviews = ds.reviews[~ds.reviews["product_id"].isin(hidden)] if ds.reviews is not None else None
    events = ds.events[~ds.events["product_id"].isin(hidden)] if ds.events is not None else None
    out = Dataset(products=products, events=events, reviews=reviews, judgments=ds.judgments,
                  root=ds.root, meta=ds.meta, pseudonymized=ds.pseudonymized)
    return out, half


def _truth(test: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {q: dict(zip(g["product_id"], g["grade"], strict=True)) for q, g in test.groupby("query", sort=True)}


def baseline_scorers(engine: Engine) -> dict[str, Callable[[str, np.ndarray], np.ndarray]]:
    """Baselines scored on the same candidates: name -> f(query, rows) -> scores."""
    lex = engine.retriever_.lexical_
    out = {"bm25": lambda q, rows: lex.score(q)[rows]}
    out.update(getattr(engine.retriever_, "baseline_scorers", lambda: {})())
    return out


def run_search(
    path: str | Path, protocol: str = "rerank", k: int = 10, progress: bool = True, engine: Engine | None = None
) -> EvalReport:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    t0 = time.time()
    ds = load_dataset(path)
    if ds.judgments is None or not len(ds.judgments):
        raise ValueError(f"{path}: search evaluation needs judgments (judgments.parquet/csv/jsonl)")
    train, test = split_judgments(ds.judgments)
    fit_ds = Dataset(products=ds.products, events=ds.events, reviews=ds.reviews, judgments=train,
                     root=ds.root, meta=ds.meta)
    pool = None
    if protocol == "cross-modal":
        fit_ds, half = strip_for_cross_modal(fit_ds)
        pool = np.flatnonzero(half)
        test = test[test["product_id"].isin(set(ds.products["product_id"].to_numpy()[half]))]
    engine = evaluation_engine(engine, k)
    engine.fit(fit_ds, progress=progress)
    truth = _truth(test)
    scorers = baseline_scorers(engine)
    runs: dict[str, dict[str, list[str]]] = {"vitrine": {}, **{b: {} for b in scorers}}
    ids = engine.catalog_.ids
    for q in tqdm(truth, desc=f"search/{protocol}", disable=not progress):
        if protocol == "retrieve":
            runs["vitrine"][q] = engine.search(q, k=k).item_ids
            rows = np.arange(len(ids))
        else:
            rows = engine.catalog_.indices(list(truth[q])) if protocol == "rerank" else pool
            s = engine.score(q, rows)
            runs["vitrine"][q] = list(ids[rows[top_k(s, k)]])
        for name, fn in scorers.items():
            s = np.asarray(fn(q, rows), dtype=np.float64)
            runs[name][q] = list(ids[rows[top_k(s, k)]])
    results = {name: evaluate_rankings(truth, r, k=k) for name, r in runs.items()}
    extra = {"queries": len(truth), **input_warnings(ds)}
    check = getattr(engine.ranker_, "check_", None)
    if check:  # which model the ranker kept on the training queries, and why
        extra["ranker_check"] = check
    return EvalReport(
        dataset=ds.name, task="search", protocol=protocol, k=k,
        metrics=results.pop("vitrine"), baselines=results, seconds=round(time.time() - t0, 2),
        extra=extra,
    )
