"""The query tuner learns a shop's own words from judgments, on the real bundled text model."""

import numpy as np
import pandas as pd
import pytest

from vitrine.features.query_tuning import QueryTuner
from vitrine.features.text import TextEncoder

FAMILIES = {
    "florp": ["red cotton t-shirt", "blue cotton t-shirt", "green linen shirt", "white polo shirt", "black tank top"],
    "grindle": ["steel claw hammer", "rubber mallet", "sledge hammer", "ball peen hammer", "framing hammer"],
    "quazz": ["garden hose 50 ft", "hose reel cart", "spray nozzle for hose", "soaker hose", "expandable hose"],
}


@pytest.fixture(scope="module")
def shop():
    titles = [t for ts in FAMILIES.values() for t in ts]
    family = np.repeat(np.arange(len(FAMILIES)), 5)
    enc = TextEncoder()
    vecs = enc.encode(titles)
    rows = []
    rng = np.random.default_rng(0)
    for f, word in enumerate(FAMILIES):
        for k in range(12):  # made-up shop words the pretrained model has never tied to these products
            for r in rng.choice(np.flatnonzero(family == f), 3, replace=False):
                rows.append({"query": f"{word} {k}", "product_id": f"p{r}", "grade": 3})
    return enc, vecs, family, pd.DataFrame(rows)


def _family_hit(encode, vecs, family) -> float:
    qs = [f"{w} 99" for w in FAMILIES]  # held-out queries with the shop words
    top = np.argsort(-(encode(qs) @ vecs.T), axis=1)[:, :5]
    return float(np.mean([(family[t] == f).mean() for f, t in enumerate(top)]))


def test_tuned_queries_find_the_products_their_words_were_judged_for(shop, tmp_path):
    enc, vecs, family, judg = shop
    ids = np.asarray([f"p{i}" for i in range(len(vecs))])
    tuner = QueryTuner(epochs=15, lr=3e-4, min_queries=10, max_seconds=120)
    pairs = tuner.pairs(judg, lambda xs: pd.Index(ids).get_indexer(xs))
    assert len(pairs) == 36 and all((g == 7).all() for _, g in pairs.values())
    before = _family_hit(enc.encode, vecs, family)
    base_vec = enc.encode(["florp 99"])
    assert tuner.fit(enc._st(), pairs, vecs) is tuner
    after = _family_hit(tuner.encode, vecs, family)
    assert after >= 0.8 and after > before + 0.3, (before, after)
    # The shared base model is untouched (product vectors stay comparable).
    np.testing.assert_allclose(enc.encode(["florp 99"]), base_vec, atol=1e-6)
    tuner.save(tmp_path / "q")
    back = QueryTuner.load(tmp_path / "q", enc._st())
    np.testing.assert_allclose(back.encode(["grindle 7", "quazz 1"]), tuner.encode(["grindle 7", "quazz 1"]), atol=1e-5)


def test_too_few_judged_queries_means_no_tuning(shop):
    enc, vecs, _, judg = shop
    tuner = QueryTuner(min_queries=100)
    pairs = tuner.pairs(judg, lambda xs: np.zeros(len(xs), np.int64))
    assert tuner.fit(enc._st(), pairs, vecs) is None
    assert QueryTuner.pairs(None, lambda xs: xs) == {}


def test_retriever_tunes_queries_from_judgments_and_keeps_them_through_save(shop, tmp_path):
    from vitrine.data.catalog import Catalog
    from vitrine.retrieve import Retriever

    _, _, _, judg = shop
    titles = [t for ts in FAMILIES.values() for t in ts]
    cat = Catalog(pd.DataFrame({"product_id": [f"p{i}" for i in range(len(titles))], "title": titles}))
    many = pd.concat([judg.assign(query=judg["query"] + f" v{i}") for i in range(3)])  # 108 judged queries
    r = Retriever(image_model="none", cache_dir=str(tmp_path / "cache")).fit(cat, judgments=many)
    assert r.query_encoder_ is not None
    plain = Retriever(image_model="none", query_tuning=False, cache_dir=str(tmp_path / "cache")).fit(cat, judgments=many)
    assert plain.query_encoder_ is None
    np.testing.assert_allclose(plain.text_vectors_, r.text_vectors_, atol=1e-6)  # products are not re-encoded
    q = ["grindle 99 v7"]
    assert not np.allclose(r.encode_queries(q), plain.encode_queries(q), atol=1e-3)
    r.save(tmp_path / "r")
    back = Retriever.load(tmp_path / "r", cat)
    np.testing.assert_allclose(back.encode_queries(q), r.encode_queries(q), atol=1e-5)
