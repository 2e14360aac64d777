"""Review pooling: each product's vector comes from its own reviews only."""

import numpy as np
import pandas as pd

from vitrine.features.reviews import pool_reviews, review_texts


def _unit(v):
    return v / np.linalg.norm(v)


REVIEWS = pd.DataFrame({
    "product_id": ["a", "a", "b", "zz", "a", "c"],
    "text": ["soft cotton", "runs small", "great kettle", "orphan review", "old review", ""],
    "rating": [5, 3, 4, 1, 2, 5],
    "timestamp": pd.to_datetime(["2024-03-01", "2024-03-02", "2024-01-01", "2024-01-01", "2023-01-01",
                                 "2024-01-01"]),
})


def test_pooled_vector_is_the_mean_of_that_products_reviews_only(hash_encoder) -> None:
    enc = hash_encoder
    vecs, has = pool_reviews(REVIEWS, ["a", "b", "c", "d"], enc, max_reviews=5)
    assert has.tolist() == [True, True, False, False]  # c has only an empty review, d none
    e = {t: enc.encode([t])[0] for t in ["soft cotton", "runs small", "old review", "great kettle"]}
    np.testing.assert_allclose(vecs[0], _unit(e["soft cotton"] + e["runs small"] + e["old review"]), atol=1e-6)
    np.testing.assert_allclose(vecs[1], e["great kettle"], atol=1e-6)
    assert not vecs[2].any() and not vecs[3].any()
    assert "orphan review" not in [t for call in enc.calls for t in call]  # unknown product: never encoded


def test_most_recent_reviews_are_kept() -> None:
    texts = review_texts(REVIEWS, ["a"], max_reviews=2)
    assert texts == [["runs small", "soft cotton"]]


def test_no_reviews_gives_no_modality(hash_encoder) -> None:
    vecs, has = pool_reviews(None, ["a", "b"], hash_encoder)
    assert vecs is None and not has.any()
    vecs, has = pool_reviews(REVIEWS, ["q"], hash_encoder)
    assert vecs is None and has.tolist() == [False]
