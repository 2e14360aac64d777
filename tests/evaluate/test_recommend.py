"""`vitrine evaluate recommend`: split, JSON contract, baselines and cold-segment metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from vitrine.evaluate.recommend import leave_last_out, run_recommend

METRICS = {"ndcg@10", "hr@10", "mrr@10", "precision@10", "recall@10"}


def test_leave_last_out_holds_out_each_users_last_event() -> None:
    ev = pd.DataFrame({"user_id": ["a", "a", "b", "a"], "product_id": ["x", "y", "z", "w"],
                       "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-01", "2024-01-03"]),
                       "event": ["purchase"] * 4})
    train, test = leave_last_out(ev)
    assert dict(zip(test["user_id"], test["product_id"], strict=True)) == {"a": "w", "b": "z"}
    assert sorted(train["product_id"]) == ["x", "y"]


def test_leave_last_out_holds_out_the_last_interaction_not_an_impression() -> None:
    """An impression is what a ranker showed; the held-out event is what the shopper chose."""
    ts = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-02", "2024-01-03", "2024-01-01"])
    ev = pd.DataFrame({"user_id": ["a", "a", "a", "a", "a", "b"], "product_id": ["x", "y", "z", "z", "w", "v"],
                       "timestamp": ts,
                       "event": ["purchase", "impression", "impression", "click", "impression", "impression"],
                       "request_id": [None, "r1", "r1", "r1", "r2", "r3"]})
    train, test = leave_last_out(ev)
    assert dict(zip(test["user_id"], test["product_id"], strict=True)) == {"a": "z"}  # b never chose anything
    # a's page r1 (what was on screen) and the later impression leave training; b's events stay.
    assert sorted(zip(train["user_id"], train["product_id"], strict=True)) == [("a", "x"), ("b", "v")]


def test_leave_last_out_drops_the_steps_that_led_to_the_held_out_choice() -> None:
    """Clicks and carts of the product bought next would make it "seen", and a seen product is never ranked."""
    at = pd.Timestamp("2024-01-01")
    rows = [  # user, product, hour, event, session
        ("c", "q", 0, "click", "s1"), ("c", "r", 1, "click", "s1"), ("c", "q", 2, "add_to_cart", "s1"),
        ("c", "q", 3, "purchase", "s1"),  # the funnel of q is in the held-out visit: out of training
        ("d", "q", 0, "purchase", None), ("d", "m", 1, "purchase", None), ("d", "n", 2, "click", None),
        ("d", "n", 3, "purchase", None),  # no sessions: the run of n just before it goes; the older q stays
    ]
    ev = pd.DataFrame([(u, p, at + pd.Timedelta(hours=h), e, s) for u, p, h, e, s in rows],
                      columns=["user_id", "product_id", "timestamp", "event", "session_id"])
    train, test = leave_last_out(ev)
    assert dict(zip(test["user_id"], test["product_id"], strict=True)) == {"c": "q", "d": "n"}
    assert sorted(zip(train["user_id"], train["product_id"], strict=True)) == [("c", "r"), ("d", "m"), ("d", "q")]


def _tiny_dataset(folder: Path, n_users: int = 120, n_items: int = 60, impressions: bool = False) -> Path:
    """Users walk along a chain of products (order matters); with ``impressions``, each purchase
    happens on a logged page of five shown products, and a last page is shown after it."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    pd.DataFrame({"product_id": [f"p{i}" for i in range(n_items)],
                  "category": [f"c{i % 5}" for i in range(n_items)]}).to_parquet(folder / "products.parquet")
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        steps = int(rng.integers(2, 8))
        for t in range(steps + impressions):
            at = pd.Timestamp("2024-01-01") + pd.Timedelta(hours=t)
            pid = f"p{(start + t) % n_items}"
            if impressions:
                shown = [pid, *(f"p{i}" for i in rng.choice(n_items, 4, replace=False))]
                rows += [(f"u{u}", p, at, "impression", f"r{u}-{t}") for p in shown]
            if t < steps:
                rows.append((f"u{u}", pid, at + pd.Timedelta(minutes=1), "purchase", f"r{u}-{t}"))
    ev = pd.DataFrame(rows, columns=["user_id", "product_id", "timestamp", "event", "request_id"])
    ev.to_parquet(folder / "events.parquet")
    return folder


@pytest.mark.parametrize("impressions", [False, True])
def test_report_contract_and_baselines(tmp_path, monkeypatch, impressions) -> None:
    monkeypatch.chdir(tmp_path)
    import vitrine.engine as engine_mod
    from vitrine.personal import Personalizer

    class Fast(Personalizer):
        def __init__(self, **kw):
            seq = {**(kw.get("seq_params") or {}), "epochs": 10}  # epochs, not seconds: deterministic
            super().__init__(**{**kw, "seq_seconds": 600.0, "seq_params": seq,
                                "als_params": {"factors": 16, "iterations": 3}})

    monkeypatch.setattr(engine_mod, "Personalizer", Fast)
    rep = run_recommend(_tiny_dataset(tmp_path / "ds", impressions=impressions), progress=False).to_dict()
    assert rep["task"] == "recommend" and rep["protocol"] == "full" and rep["k"] == 10
    assert METRICS <= set(rep["metrics"])
    assert {"popularity", "item-knn", "als"} <= set(rep["baselines"])
    for m in rep["baselines"].values():
        assert METRICS <= set(m)
    assert rep["extra"]["users"] == 120
    assert "cold_product_metrics" in rep["extra"] or rep["extra"]["cold_products"] == 0
    # the chain is learnable from order: vitrine must beat popularity (held-out impressions would
    # leave nothing to learn, and a product shown before counted as seen could never be hit)
    assert rep["metrics"]["ndcg@10"] > max(0.3, rep["baselines"]["popularity"]["ndcg@10"])


def test_candidates_protocol_scores_lists_and_breaks_ties_fairly(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    import vitrine.engine as engine_mod
    import vitrine.evaluate.recommend as rec
    from vitrine.personal import Personalizer

    class Fast(Personalizer):
        def __init__(self, **kw):
            seq = {**(kw.get("seq_params") or {}), "epochs": 10}  # epochs, not seconds: deterministic
            super().__init__(**{**kw, "seq_seconds": 600.0, "seq_params": seq,
                                "als_params": {"factors": 16, "iterations": 3}})

    calls = []

    class Spy(Fast):
        def score_candidates(self, user_key, rows):
            calls.append(len(rows))
            return super().score_candidates(user_key, rows)

    monkeypatch.setattr(engine_mod, "Personalizer", Spy)
    monkeypatch.setattr(rec, "baseline_scorers", lambda engine, train: {"constant": lambda u: np.zeros(60)})
    ds = _tiny_dataset(tmp_path / "ds")
    rng = np.random.default_rng(1)
    cand = [(f"u{u}", f"p{j}") for u in range(120) for j in rng.choice(60, 19, replace=False)]
    pd.DataFrame(cand, columns=["user_id", "product_id"]).to_parquet(ds / "candidates.parquet")
    rep = run_recommend(ds, candidates=True, progress=False).to_dict()
    assert rep["protocol"] == "candidates" and rep["extra"]["users"] == 120
    assert calls and max(calls) <= 20  # the engine scored each given list, not the catalog
    assert "candidate_blend_weights" in rep["extra"]
    # a scorer that ties everything gets chance level, not a win from the held-out's position
    assert rep["baselines"]["constant"]["ndcg@10"] < 0.5
    assert rep["metrics"]["ndcg@10"] > 0.6


def test_tuning_follows_the_cutoff_the_run_scores(tmp_path, monkeypatch) -> None:
    """`--k 5` tunes the blends for NDCG@5; a shop's own VITRINE_CUTOFF wins over it."""
    monkeypatch.chdir(tmp_path)
    import vitrine.engine as engine_mod
    from vitrine.config import Settings
    from vitrine.engine import Engine
    from vitrine.personal import Personalizer

    class Fast(Personalizer):
        def __init__(self, **kw):
            super().__init__(**{**kw, "sources": ("itemknn", "transitions", "popularity")})

    monkeypatch.setattr(engine_mod, "Personalizer", Fast)
    ds = _tiny_dataset(tmp_path / "ds")
    engine = Engine(settings=Settings(), home=tmp_path / "h1")
    rep = run_recommend(ds, k=5, progress=False, engine=engine).to_dict()
    assert rep["k"] == 5 and "ndcg@5" in rep["metrics"]
    assert engine.personal_.cutoff == 5 and "full_ndcg@5" in engine.personal_.tuning_
    monkeypatch.setenv("VITRINE_CUTOFF", "3")
    engine = Engine(settings=Settings(), home=tmp_path / "h2")
    run_recommend(ds, k=5, progress=False, engine=engine)
    assert engine.personal_.cutoff == 3 and "full_ndcg@3" in engine.personal_.tuning_


def test_fit_learns_how_lists_were_drawn_without_the_held_out_products(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    import vitrine.engine as engine_mod
    from vitrine.personal import Personalizer

    given = []

    class Spy(Personalizer):
        def __init__(self, **kw):
            super().__init__(**{**kw, "sources": ("itemknn", "transitions", "popularity")})

        def fit(self, events, catalog, item_vectors=None, candidates=None):
            given.append(candidates)
            return super().fit(events, catalog, item_vectors=item_vectors, candidates=candidates)

    monkeypatch.setattr(engine_mod, "Personalizer", Spy)
    ds = _tiny_dataset(tmp_path / "ds")
    ev = pd.read_parquet(ds / "events.parquet")
    _, test = leave_last_out(ev)
    held = set(zip(test["user_id"], test["product_id"], strict=True))
    rng = np.random.default_rng(2)
    rows = [(u, f"p{j}") for u in test["user_id"] for j in rng.choice(60, 19, replace=False)]
    rows = list(dict.fromkeys([*rows, *held]))  # this file names each shopper's held-out product too
    pd.DataFrame(rows, columns=["user_id", "product_id"]).to_parquet(ds / "candidates.parquet")
    run_recommend(ds, candidates=True, progress=False)
    seen_by_fit = set(zip(given[0]["user_id"], given[0]["product_id"], strict=True))
    assert not seen_by_fit & held and len(seen_by_fit) == len(rows) - len(held)
    given.clear()
    run_recommend(ds, progress=False)  # a full-ranking run gives fit no lists
    assert given == [None]
