"""Retriever: sources, fusion, image modality, updates and persistence (on a small synthetic shop)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from vitrine.data.catalog import Catalog
from vitrine.data.dataset import load_dataset
from vitrine.data.synth import generate
from vitrine.index.vector import VectorIndex
from vitrine.results import top_k
from vitrine.retrieve import Retriever, rrf_scores, zsum_scores

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    out = tmp_path_factory.mktemp("shop") / "shop"
    generate(out, products=720, users=20, seed=5, image_size=32, sessions_per_user=1.0, judged_queries=20)
    ds = load_dataset(out)
    truth = pd.read_parquet(out / "truth" / "products.parquet").set_index("product_id")
    return ds, truth, tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def fitted(shop):
    ds, truth, cache = shop
    cat = Catalog(ds.products, root=ds.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = Retriever(image_model="tower", image_size=32, tower_seconds=15, cache_dir=str(cache)).fit(cat)
    return r, cat


def _colour_recall(r, cat, truth) -> float:
    t = truth.loc[cat.ids].copy()
    t["top"] = cat.products["category"].str.split(" > ").str[0].str.lower().to_numpy()
    pool = np.flatnonzero(~t["color_in_text"].to_numpy())
    recalls = []
    for (colour, category), g in t.iloc[pool].groupby(["color", "top"]):
        rel = set(cat.indices(g.index))
        top = pool[top_k(r.score_rows(f"{colour} {category}", pool).scores, 10)]
        recalls.append(len(rel & set(top)) / min(len(rel), 10))
    return float(np.mean(recalls))


def test_image_modality_must_measurably_help(shop, fitted) -> None:
    """Queries '<colour> <category>' ranking only the products whose colour only the image shows."""
    ds, truth, cache = shop
    r, cat = fitted
    text_only = Retriever(image_model="none", cache_dir=str(cache)).fit(cat)
    assert text_only.image_vectors_ is None and "seen" not in text_only.lexical_.fields_
    with_images, without = _colour_recall(r, cat, truth), _colour_recall(text_only, cat, truth)
    assert with_images >= 2 * without, (with_images, without)


def test_photo_words_index_what_the_text_does_not_say(shop, fitted) -> None:
    """The lexical 'seen' field holds the colour a photo shows when the text omits it, and only unsaid words."""
    _, truth, _ = shop
    r, cat = fitted
    assert "seen" in r.lexical_.fields_
    words = np.array(list(r.lexical_.vocab_), dtype=object)
    seen = r.lexical_.matrices_["seen"].tocsr()
    t = truth.loc[cat.ids]
    pool = np.flatnonzero(~t["color_in_text"].to_numpy())
    hits = [t["color"].iloc[i].lower() in set(words[seen[i].indices]) for i in pool]
    assert np.mean(hits) >= 0.5, np.mean(hits)
    for i in range(0, len(cat), 7):
        said = {w for f, m in r.lexical_.matrices_.items() if f != "seen" for w in words[m.tocsr()[i].indices]}
        assert not said & set(words[seen[i].indices])
    assert len(seen[int(pool[0])].indices) <= 8


def test_retrieve_sources_and_fusion(fitted) -> None:
    r, cat = fitted
    c = r.retrieve("red sandals", k=20)
    assert len(c.rows) == 20 and set(c.sources) == {"lexical", "ngram", "dense", "image", "popularity"}
    assert np.all(np.diff(c.scores) <= 1e-12)
    for v in c.sources.values():
        assert v.shape == (20,)
    titles = cat.products["title"].iloc[c.rows[:5]].str.lower()
    assert titles.str.contains("sandal").all()


def test_text_less_products_found_by_image_and_scored_nan_by_dense(fitted) -> None:
    r, cat = fitted
    assert r.has_text_.all() and r.has_image_.all()
    c = r.score_rows("red sandals", np.arange(10))
    assert np.isfinite(c.sources["dense"]).all()


def test_empty_query_returns_popular(fitted) -> None:
    r, _ = fitted
    c = r.retrieve(None, k=5)
    assert len(c.rows) == 5 and list(c.sources) == ["popularity"]


def test_image_query_finds_the_same_product(fitted) -> None:
    r, cat = fitted
    row = 17
    c = r.retrieve(query_image=cat.image_path(row), k=10)
    assert row in c.rows[:3]
    assert r.retrieve(query_image=b"not an image", k=5) is not None  # warns, falls back to popularity


def test_similar_and_item_vectors(fitted) -> None:
    r, cat = fitted
    iv = r.item_vectors()
    assert iv.shape[0] == len(cat) and np.allclose(np.linalg.norm(iv, axis=1), 1, atol=1e-4)
    rows, scores = r.similar(3, k=5)
    assert 3 not in rows and len(rows) == 5 and np.all(np.diff(scores) <= 1e-6)
    leaf = cat.products["category"]
    assert (leaf.iloc[rows] == leaf.iloc[3]).mean() >= 0.6


def test_baseline_scorers(fitted) -> None:
    r, _ = fitted
    fns = r.baseline_scorers()
    assert {"bm25", "dense", "image", "hybrid"} <= set(fns)
    rows = np.arange(50)
    for f in fns.values():
        s = np.asarray(f("blue cap", rows))
        assert s.shape == (50,) and np.isfinite(s).all()


def test_upsert_delete_and_save_load(fitted, shop, tmp_path) -> None:
    ds, _, cache = shop
    r, _ = fitted
    cat = Catalog(ds.products, root=ds.root)
    r2 = Retriever.load(_save(r, tmp_path / "r"), cat)
    np.testing.assert_allclose(r2.score_rows("blue cap", np.arange(30)).scores,
                               r.score_rows("blue cap", np.arange(30)).scores, rtol=1e-5)
    new = pd.DataFrame([{"product_id": "zz1", "title": "Quantum Flux Capacitor", "image": cat.image_path(5)}])
    rows = cat.upsert(new)
    r2.add(rows)
    c = r2.retrieve("quantum flux capacitor", k=3)
    assert c.rows[0] == rows[0]
    # Its photo (product 5's) names what the new title does not: product 5's own words come back.
    words = np.array(list(r2.lexical_.vocab_), dtype=object)
    seen_new = set(words[r2.lexical_.matrices_["seen"].tocsr()[rows[0]].indices])
    title5 = {w for w in words[r2.lexical_.matrices_["title"].tocsr()[5].indices]}
    assert seen_new & title5 and not seen_new & {"quantum", "flux", "capacitor"}
    cat.delete("zz1")
    assert rows[0] not in r2.retrieve("quantum flux capacitor", k=3).rows


def _save(r, folder):
    folder.mkdir(parents=True)
    r.save(folder)
    return folder


def test_fusion_functions() -> None:
    src = {"a": np.array([3.0, 2.0, 1.0]), "b": np.array([np.nan, 0.9, 0.5])}
    s = rrf_scores(src, {"a": 1.0, "b": 1.0})
    assert s[1] > s[0] and s[1] > s[2]
    z = zsum_scores(src, {"a": 1.0, "b": 0.0})
    assert np.argmax(z) == 0
    with pytest.raises(ValueError, match="unknown fusion"):
        Retriever(fusion="max")._resolve()
    with pytest.raises(ValueError, match="unknown item fusion 'sum'"):
        Retriever(item_fusion="sum")._resolve()


# -- learned item fusion (text, image, reviews, brand, category, numeric) ------------------


@pytest.fixture(scope="module")
def fused(shop):
    ds, _, cache = shop
    cat = Catalog(ds.products, root=ds.root)
    train = ds.judgments[ds.judgments["split"] == "train"] if "split" in ds.judgments else ds.judgments
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = Retriever(image_model="tower", image_size=32, tower_seconds=5, cache_dir=str(cache),
                      item_fusion="attention", fusion_seconds=5).fit(cat, reviews=ds.reviews, judgments=train)
    return r, cat


def test_learned_fusion_uses_every_modality_and_adds_the_item_source(fused) -> None:
    r, cat = fused
    assert r.fusion_.names_ == ["text", "image", "reviews", "brand", "category", "numeric"]
    assert r.has_review_.any() and not r.has_review_.all()
    iv = r.item_vectors()
    assert iv.shape[0] == len(cat) and np.allclose(np.linalg.norm(iv, axis=1), 1, atol=1e-4)
    c = r.retrieve("red sandals", k=20)
    assert set(c.sources) == {"lexical", "ngram", "dense", "image", "popularity", "item"}
    assert np.isfinite(c.sources["item"]).all()
    assert "item" in r.baseline_scorers()
    rows, _ = r.similar(3, k=5)
    leaf = cat.products["category"]
    assert (leaf.iloc[rows] == leaf.iloc[3]).mean() >= 0.6


def test_learned_fusion_save_load_and_upsert(fused, shop, tmp_path) -> None:
    ds, _, _ = shop
    r, _ = fused
    cat = Catalog(ds.products, root=ds.root)
    r2 = Retriever.load(_save(r, tmp_path / "r"), cat)
    assert r2.fusion_.method == "attention"
    np.testing.assert_allclose(r2.item_vectors(), r.item_vectors(), atol=1e-6)
    np.testing.assert_allclose(r2.score_rows("blue cap", np.arange(30)).sources["item"],
                               r.score_rows("blue cap", np.arange(30)).sources["item"], atol=1e-5)
    new = pd.DataFrame([{"product_id": "zz1", "title": "Quantum Flux Capacitor", "brand": "Doc Brown",
                         "category": "Garage > Time Machines", "price": 88.0, "image": cat.image_path(5)}])
    rows = cat.upsert(new)
    reviews = pd.DataFrame({"product_id": ["zz1"], "text": ["It works at 88 mph"], "rating": [5.0]})
    r2.add(rows, reviews=reviews)
    row = rows[0]
    assert r2.has_review_[row] and r2.brands_.codes_[row] >= 0
    assert np.isclose(np.linalg.norm(r2.item_vectors()[row]), 1, atol=1e-4)  # a fused vector at once
    c = r2.retrieve("quantum flux capacitor", k=3)
    assert c.rows[0] == row and np.isfinite(c.sources["item"][0])
    assert row in r2._active_top(r2.item_index_, r2._text_vec("quantum flux capacitor"), 5)
    cat.delete("zz1")
    assert row not in r2.retrieve("quantum flux capacitor", k=3).rows


def test_set_reviews_drops_an_erased_shoppers_review_vectors(fused, shop, tmp_path) -> None:
    ds, _, _ = shop
    r = Retriever.load(_save(fused[0], tmp_path / "r"), Catalog(ds.products, root=ds.root))  # a copy
    reviewed = np.flatnonzero(r.has_review_)
    pid = r.catalog_.ids[reviewed[0]]
    before = r.item_vectors()[reviewed[0]].copy()
    r.set_reviews(ds.reviews[ds.reviews["product_id"] != pid])
    assert not r.has_review_[reviewed[0]] and r.has_review_[reviewed[1:]].all()
    assert not np.allclose(r.item_vectors()[reviewed[0]], before)
    r.set_reviews(None)
    assert not r.has_review_.any() and np.isfinite(r.retrieve("red sandals", k=5).sources["item"]).all()


def test_repeated_text_queries_reuse_their_candidates_until_the_catalog_changes(fitted, shop, tmp_path) -> None:
    ds, _, _ = shop
    r, _ = fitted
    cat = Catalog(ds.products, root=ds.root)
    r2 = Retriever.load(_save(r, tmp_path / "r"), cat)
    first = r2.retrieve("blue cap", k=20)
    again = r2.retrieve("blue cap", k=20)
    assert again is first and not first.rows.flags.writeable  # shared, so nobody may write to it
    deep = r2.retrieve("blue cap", k=60, cache=False)  # one-off lists neither read nor fill the cache
    assert r2.retrieve("blue cap", k=60) is not deep and r2.retrieve("blue cap", k=20, cache=False) is not first
    r2.result_cache_size = 0
    fresh = r2.retrieve("blue cap", k=20)
    assert fresh is not first
    np.testing.assert_array_equal(fresh.rows, first.rows)
    np.testing.assert_allclose(fresh.scores, first.scores)
    r2.result_cache_size = 1024
    # An upsert is found by the very next identical query (whose candidates were kept without it) ...
    q = "quantum flux capacitor"
    before = r2.retrieve(q, k=3)
    rows = cat.upsert(pd.DataFrame([{"product_id": "zz9", "title": "Quantum Flux Capacitor",
                                     "image": cat.image_path(5)}]))
    r2.add(rows)
    assert rows[0] not in before.rows and r2.retrieve(q, k=3).rows[0] == rows[0]
    # ... and a product deleted through the catalog alone is gone from it.
    cat.delete("zz9")
    assert rows[0] not in r2.retrieve(q, k=3).rows


def test_both_depths_of_a_query_share_one_scan_of_the_catalog(fitted, shop, tmp_path, monkeypatch) -> None:
    ds, _, _ = shop
    r, _ = fitted
    cat = Catalog(ds.products, root=ds.root)
    r2 = Retriever.load(_save(r, tmp_path / "r"), cat)
    scans, real = [], r2._scan
    monkeypatch.setattr(r2, "_scan", lambda qs: scans.append(qs["text"]) or real(qs))
    q = "red sandals"
    shallow = r2.retrieve(q, k=20)
    deep = r2.retrieve(q, k=300, cache=False)  # a search's facet list
    assert scans == [q]
    r2._changed()  # what a retriever that never kept the scan returns
    np.testing.assert_array_equal(r2.retrieve(q, k=300, cache=False).rows, deep.rows)
    np.testing.assert_array_equal(r2.retrieve(q, k=20).rows, shallow.rows)
    assert scans == [q, q]
    # The scan ranks products as the exact indexes do.
    qs = r2._query(q, None)
    full = real(qs)
    for name, index in (("dense", r2.dense_index_), ("image", r2.image_index_)):
        top = top_k(np.where(cat.active, full[name], -np.inf), 50)
        _, scores = index.search(qs[name], 50)
        np.testing.assert_allclose(full[name][top], scores, atol=1e-5)
    # A catalog change starts a new scan.
    rows = cat.upsert(pd.DataFrame([{"product_id": "zz8", "title": "Red sandals deluxe"}]))
    r2.add(rows)
    assert r2.retrieve(q, k=20, cache=False) is not None and scans == [q, q, q]
    # An approximate index is searched, not scanned.
    has = np.flatnonzero(r2.has_text_)
    r2.dense_index_ = VectorIndex(kind="hnsw").build(r2.text_vectors_[has], has)
    assert "dense" not in real(qs) and "image" in real(qs)
    assert len(r2.retrieve(q, k=20, cache=False).rows) == 20
