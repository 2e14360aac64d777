"""The neural search ranker on a small synthetic shop: it trains from logs and
judgments, beats the retrieval order on held-out queries, survives
save/load, and its explanations add up. Tiny training budgets; no timing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from _lite import lite_engine
from vitrine.data.dataset import Dataset, load_dataset
from vitrine.data.synth import generate
from vitrine.evaluate.counterfactual import simulated_search_ndcg
from vitrine.rank import SearchRanker
from vitrine.rank.features import GROUPS, to_matrix
from vitrine.rank.neural import NeuralRanker, NeuralSearchRanker


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    s = generate(tmp_path_factory.mktemp("neural") / "shop", products=400, users=200, seed=3, images=False,
                 sessions_per_user=6)
    ds = load_dataset(s.path)
    cut = ds.events["timestamp"].quantile(0.8)
    train = Dataset(products=ds.products, events=ds.events[ds.events["timestamp"] < cut], reviews=ds.reviews,
                    judgments=ds.judgments[ds.judgments["split"] == "train"], root=ds.root, meta=ds.meta)
    return ds, train


@pytest.fixture(scope="module")
def engine(shop, tmp_path_factory):
    _, train = shop
    ranker = SearchRanker(model="neural", max_log_pages=500, neural_epochs=8, neural_seconds=60, device="cpu")
    return lite_engine(train, tmp_path_factory.mktemp("home"), ranker)


def test_neural_model_is_a_search_ranker(engine) -> None:
    r = engine.ranker_
    assert isinstance(r, SearchRanker) and isinstance(r, NeuralSearchRanker)
    assert isinstance(r.model_, NeuralRanker) and r.model_.history_
    assert {"bm25_title", "price_pct_cat", "aff_leaf"} <= set(r.feature_names_)
    # Query-conditioned attention has a token per modality, the product's words among them.
    assert {"catalog", "text", "personal", "price"} <= set(r.model_.net_.tokens)


def test_beats_retrieval_order_on_held_out_queries(shop, engine) -> None:
    """Later search requests than any training event, gain = the shopper's
    true click probability (hidden truth); retrieval order = BM25 alone."""
    ds, _ = shop
    req = pd.read_parquet(ds.root / "truth" / "requests.parquet")
    cut = ds.events["timestamp"].quantile(0.8)
    req = req[(req["timestamp"] >= cut) & req["query"].notna()].head(80)
    learned = simulated_search_ndcg(engine, ds.root, req, depth=50)
    keep = engine.ranker_
    try:
        bm25 = SearchRanker(model="blend", weights={"lexical": 1.0, "personal": 0.0})
        engine.ranker_ = bm25.fit(engine, Dataset(products=ds.products))
        retrieval = simulated_search_ndcg(engine, ds.root, req, depth=50)
    finally:
        engine.ranker_ = keep
    print(f"neural={learned:.4f} retrieval={retrieval:.4f}")
    assert learned > retrieval


def test_save_load_identical_scores(engine, tmp_path) -> None:
    rows = np.arange(60)
    key = engine.user_key("u001")
    cands = engine.retriever_.score_rows("red sneaker", rows)
    before, _ = engine.ranker_.rank("red sneaker", cands, None, user_key=key, engine=engine)
    engine.ranker_.save(tmp_path / "ranker")
    loaded = SearchRanker.load(tmp_path / "ranker")
    assert isinstance(loaded, NeuralSearchRanker)
    after, _ = loaded.rank("red sneaker", cands, None, user_key=key, engine=engine)
    np.testing.assert_array_equal(before, after)


def test_explanations_split_the_score_by_attention(engine) -> None:
    res = engine.search("sneaker", user_id="u002", k=5, explain=True)
    base = engine.ranker_.model_.base_
    for s, ex in zip(res.scores, res.explanations, strict=True):
        assert set(ex) == set(GROUPS) | {"base"}
        assert sum(ex.values()) == pytest.approx(s, abs=1e-6)
        parts = np.asarray([ex[g] for g in GROUPS])
        # Every part has the sign of score - base: attention weights are non-negative.
        assert np.all(parts * (s - base) >= -1e-9)
    cands = engine.retriever_.retrieve("sneaker", k=20)
    att = engine.ranker_.attention("sneaker", cands, user_key=engine.user_key("u002"), engine=engine)
    for a in att:
        assert sum(a.values()) == pytest.approx(1.0, abs=1e-5) and min(a.values()) >= 0


def test_same_feature_path_as_serving(engine) -> None:
    cands = engine.retriever_.retrieve("sneaker", k=30)
    key = engine.user_key("u003")
    f = engine.ranker_.features("sneaker", cands, None, user_key=key, engine=engine)
    X = to_matrix(f, engine.ranker_.feature_names_, len(cands.rows))
    from vitrine.rank.features import live_history

    hist = live_history(engine.personal_, key)
    c, _, _ = engine.ranker_.model_.score(engine, "sneaker", cands.rows, X, hist)
    np.testing.assert_array_equal(c, engine.ranker_.rank("sneaker", cands, None, user_key=key, engine=engine)[0])
