"""The judged-query memory behind the ranker's ``mem_*`` features."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vitrine.data.catalog import Catalog
from vitrine.features.lexical import BM25Index, tokenize
from vitrine.rank.query_memory import NAMES, QueryMemory, fold_of

COUCHES = ["grey couch", "leather couch", "corner couch", "velvet couch", "small couch", "couch bed"]
LAMPS = ["desk lamp", "floor lamp", "reading lamp", "brass lamp", "lamp shade", "table lamp"]


def _bag(text: str, dim: int = 64) -> np.ndarray:
    """A bag-of-words vector: texts sharing words point the same way (a stand-in for the text encoder)."""
    v = np.zeros(dim, np.float32)
    for w in tokenize(text):
        v += np.random.default_rng(sum(map(ord, w))).normal(size=dim).astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-9)


def _engine(titles: list[str]) -> SimpleNamespace:
    catalog = Catalog(pd.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles}))
    lex = BM25Index(fields={"title": 1.0}).fit([{"title": t} for t in titles])
    retriever = SimpleNamespace(
        lexical_=lex,
        text_vectors_=np.stack([_bag(t) for t in titles]),
        has_text_=np.ones(len(titles), bool),
        encode_queries=lambda qs: np.stack([_bag(q) for q in qs]),
        _text_vec=_bag,
    )
    return SimpleNamespace(catalog_=catalog, retriever_=retriever)


def _judged(engine) -> dict[str, dict[str, float]]:
    """Shoppers who say "sofa" were shown couches and "light" lamps; no title says either word."""
    ids = engine.catalog_.ids
    couches, lamps = list(ids[: len(COUCHES)]), list(ids[len(COUCHES):])
    return {
        "sofa grey": {couches[0]: 3.0, couches[4]: 2.0},
        "sofa leather": {couches[1]: 3.0, couches[3]: 2.0},
        "cheap sofa": {couches[2]: 3.0, couches[5]: 2.5},
        "light desk": {lamps[0]: 3.0, lamps[3]: 2.0},
        "light floor": {lamps[1]: 3.0, lamps[4]: 1.0},
        "bright light": {lamps[2]: 3.0, lamps[5]: 2.0},
    }


@pytest.fixture
def fitted():
    engine = _engine(COUCHES + LAMPS)
    return engine, QueryMemory(k=3, folds=3).fit(_judged(engine), engine.catalog_, engine.retriever_)


def test_association_finds_what_a_new_query_means_though_no_title_says_it(fitted):
    engine, memory = fitted
    rows = np.arange(len(COUCHES) + len(LAMPS))
    f = memory.view("sofa").features(engine, "sofa", rows)  # never judged; BM25 finds nothing for it
    assert set(f) == set(NAMES)
    couch, lamp = f["mem_assoc_sum"][: len(COUCHES)], f["mem_assoc_sum"][len(COUCHES):]
    assert couch.min() > 0 and lamp.max() == 0
    assert f["mem_assoc_known"][0] == 1.0
    light = memory.view("light").features(engine, "light", rows)["mem_assoc_max"]
    assert light[len(COUCHES):].min() > light[: len(COUCHES)].max()


def test_similar_past_queries_vote_for_what_they_judged(fitted):
    engine, memory = fitted
    rows = np.arange(len(COUCHES) + len(LAMPS))
    f = memory.view(None).features(engine, "sofa leather", rows)
    assert np.argmax(f["mem_qknn_vote"]) == 1  # "sofa leather" judged the leather couch 3
    assert f["mem_qknn_top"][0] == pytest.approx(1.0, abs=1e-5)
    assert f["mem_qknn_cos"][: len(COUCHES)].mean() > f["mem_qknn_cos"][len(COUCHES):].mean()


def test_a_judged_query_trains_without_its_own_fold(fitted):
    """Training features must not read the query's own judgments, or the ranker learns
    to trust a memory that never knows a new query's answer that well."""
    engine, memory = fitted
    rows = np.arange(len(COUCHES) + len(LAMPS))
    q = "sofa leather"
    served = memory.view(None).features(engine, q, rows)
    trained = memory.view(q).features(engine, q, rows)
    assert trained["mem_qknn_top"][0] < 0.999  # it no longer finds itself
    same_fold = {p for other, g in _judged(engine).items() if fold_of(other, 3) == fold_of(q, 3) for p in g}
    ids = engine.catalog_.ids
    assert served["mem_qknn_vote"][1] > 0
    other_folds = {p for other, g in _judged(engine).items() if fold_of(other, 3) != fold_of(q, 3) for p in g}
    hidden = [r for r in rows if ids[r] in same_fold - other_folds]
    assert hidden  # the leather couch at least
    assert (trained["mem_qknn_vote"][hidden] == 0).all()


def test_serving_keeps_one_table_and_survives_save_and_load(fitted, tmp_path):
    engine, memory = fitted
    rows = np.arange(len(COUCHES) + len(LAMPS))
    before = memory.view(None).features(engine, "cheap sofa bed", rows)
    memory.serving_only()
    assert list(memory.assoc_) == [None]
    memory.save(tmp_path / "m.pkl")
    after = QueryMemory.load(tmp_path / "m.pkl").view(None).features(engine, "cheap sofa bed", rows)
    for name in NAMES:
        np.testing.assert_array_equal(before[name], after[name])


def test_products_added_after_fit_get_features(fitted):
    engine, memory = fitted
    beyond = np.asarray([0, len(COUCHES) + len(LAMPS) + 5])  # a row the indexes do not hold yet
    f = memory.view(None).features(engine, "sofa", beyond)
    assert f["mem_assoc_sum"][1] == 0 and f["mem_qknn_vote"][1] == 0 and np.isnan(f["mem_qknn_cos"][1])
