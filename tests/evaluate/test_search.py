"""`vitrine evaluate search` on a tiny synthetic shop: JSON contract, baselines, protocols."""

import functools
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import vitrine.engine
import vitrine.rank.features
from vitrine.data.synth import generate
from vitrine.evaluate.search import run_search, strip_for_cross_modal
from vitrine.data.dataset import load_dataset
from vitrine.retrieve import Retriever

torch.set_num_threads(1)
METRICS = {"ndcg@10", "hr@10", "mrr@10", "precision@10", "recall@10"}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "shop"
    generate(out, products=300, users=20, seed=11, image_size=32, sessions_per_user=1.0, judged_queries=30)
    return out


@pytest.fixture
def fast_retriever(monkeypatch, tmp_path_factory):
    cache = str(tmp_path_factory.getbasetemp() / "emb-cache")
    monkeypatch.setattr(vitrine.engine, "Retriever",
                        functools.partial(Retriever, image_size=32, tower_seconds=5, cache_dir=cache))


@pytest.mark.parametrize("protocol", ["rerank", "retrieve", "cross-modal"])
def test_report_contract_and_baselines(shop, fast_retriever, protocol, tmp_path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = run_search(shop, protocol=protocol, progress=False,
                         engine=vitrine.engine.Engine(home=tmp_path / "home"))
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["task"] == "search" and d["protocol"] == protocol and d["k"] == 10
    assert set(d["metrics"]) == METRICS
    assert {"bm25", "dense"} <= set(d["baselines"])
    for m in d["baselines"].values():
        assert set(m) == METRICS and all(0 <= v <= 1 for v in m.values())
    if protocol == "retrieve":
        assert d["baselines"]["dense"]["ndcg@10"] > 0.1 and d["baselines"]["bm25"]["ndcg@10"] > 0.1
    if protocol == "cross-modal":
        # text is gone from the ranked half: only images can rank it, and they must beat the text baselines
        assert d["baselines"]["image"]["ndcg@10"] > d["baselines"]["bm25"]["ndcg@10"]


def test_cross_modal_strips_a_fixed_half(shop) -> None:
    ds = load_dataset(shop)
    stripped, half = strip_for_cross_modal(ds)
    again, half2 = strip_for_cross_modal(ds)
    np.testing.assert_array_equal(half, half2)
    assert 0.35 < half.mean() < 0.65
    hidden = stripped.products[half]
    assert hidden["title"].isna().all() and hidden["image"].notna().all()
    assert stripped.products[~half]["title"].notna().all()


def test_unknown_protocol(shop) -> None:
    with pytest.raises(ValueError, match="unknown protocol"):
        run_search(shop, protocol="bogus")


def test_a_catalog_of_photos_alone_is_searchable(tmp_path, tmp_path_factory, monkeypatch) -> None:
    """No product text at all: the tower learns words for the photos from the training judgments."""
    shop = tmp_path / "shop"
    generate(shop, products=600, users=100, seed=3, image_size=32, sessions_per_user=2.0, judged_queries=80)
    ds = load_dataset(shop)
    folder = tmp_path / "photos-only"
    folder.mkdir()
    ds.products[["product_id", "image"]].to_parquet(folder / "products.parquet")
    ds.judgments.to_parquet(folder / "judgments.parquet")
    (folder / "images").symlink_to(shop / "images")
    cache = str(tmp_path_factory.getbasetemp() / "emb-cache")
    monkeypatch.setattr(vitrine.engine, "Retriever",
                        functools.partial(Retriever, image_size=32, tower_seconds=20, cache_dir=cache))
    engine = vitrine.engine.Engine(home=tmp_path / "home")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = run_search(folder, protocol="retrieve", progress=False, engine=engine)
    assert engine.retriever_.image_encoder_ is not None and not engine.retriever_.has_text_.any()
    # BM25 has no words to match, so its ranking is a tie broken by row order: about chance.
    assert rep.metrics["ndcg@10"] > 0.3 and rep.metrics["ndcg@10"] > 3 * rep.baselines["bm25"]["ndcg@10"], rep
    # Judgments alone from few queries: the report says which model the cross-validated check kept.
    check = rep.extra["ranker_check"]
    assert check["kept"] in {"trees", "blend", "mixture"} and 0 < check["queries"] <= 80


def test_judged_descriptions_only_for_products_without_text() -> None:
    from vitrine.data.catalog import Catalog
    from vitrine.retrieve import judged_descriptions

    cat = Catalog(pd.DataFrame({"product_id": ["a", "b", "c"]}))
    j = pd.DataFrame({"query": ["red mug", "mug", "blue vase", "red mug"], "product_id": ["a", "a", "b", "c"],
                      "grade": [3, 1, 2, 3]})
    out = judged_descriptions(cat, j, np.array([True, True, False]))
    assert out == {0: "red mug", 1: "blue vase"}  # only the best grade's queries; "c" has its own text
    assert judged_descriptions(cat, None, np.ones(3, bool)) == {}


def test_products_without_text_are_ranked_by_a_text_blind_model(shop, fast_retriever, tmp_path, monkeypatch) -> None:
    """The cross-modal half has photos and no text: a second model without text features ranks it."""
    from vitrine.data.dataset import Dataset
    from vitrine.evaluate.search import split_judgments
    from vitrine.rank.ranker import reads_no_text

    ds = load_dataset(shop)
    train, test = split_judgments(ds.judgments)
    fit_ds, half = strip_for_cross_modal(Dataset(products=ds.products, events=ds.events, reviews=ds.reviews,
                                                 judgments=train, root=ds.root, meta=ds.meta))
    engine = vitrine.engine.Engine(home=tmp_path / "home")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine.fit(fit_ds, progress=False)
    ranker = engine.ranker_
    blind = ranker.text_blind_
    assert blind is not None
    names = [ranker.feature_names_[j] for j in blind.cols]
    assert names and all(reads_no_text(n) for n in names)
    assert "src_image" in names and not any(n.startswith(("bm25_", "match_", "src_lexical")) for n in names)
    rows = np.r_[np.flatnonzero(half)[:20], np.flatnonzero(~half)[:20]]
    query = str(test["query"].iloc[0])
    scores = engine.score(query, rows)
    cands = engine.retriever_.score_rows(query, rows)
    X = vitrine.rank.features.to_matrix(ranker.features(query, cands, engine=engine), ranker.feature_names_, 40)
    np.testing.assert_allclose(scores[:20], blind.predict(X[:20]), rtol=1e-6)  # no text: the blind model
    np.testing.assert_allclose(scores[20:], ranker.model_.predict(X[20:]), rtol=1e-6)  # text: the main one
    # a better photo match never ranks lower, all else equal
    grid = np.repeat(X[:1], 21, axis=0)
    grid[:, ranker.feature_names_.index("src_image")] = np.linspace(-1, 1, 21)
    assert np.all(np.diff(blind.model.predict(grid[:, blind.cols])) >= -1e-9)
    _, expl = ranker.rank(query, cands, None, engine=engine)
    np.testing.assert_allclose([sum(e.values()) for e in expl], scores, rtol=1e-5, atol=1e-6)
    engine.save()
    monkeypatch.setattr(vitrine.engine, "Retriever", Retriever)  # load through the class, not the fast partial
    again = vitrine.engine.Engine.load(tmp_path / "home")
    np.testing.assert_allclose(again.score(query, rows), scores, rtol=1e-6)
