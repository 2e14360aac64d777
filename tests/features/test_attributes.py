"""Numeric attributes (shared definitions with the ranker) and brand/category embeddings."""

import numpy as np
import pandas as pd
import pytest

from vitrine.features.attributes import (
    NumericScaler,
    ValueEmbeddings,
    brand_values,
    category_values,
    numeric_table,
)
from vitrine.rank.features import product_table

PRODUCTS = pd.DataFrame({
    "product_id": ["a", "b", "c", "d"],
    "brand": ["Acme", "Acme", None, "Zeta"],
    "category": ["Home > Kettles", "Home > Kettles", "Home > Kettles", "Shoes > Sandals"],
    "price": [10.0, 30.0, 20.0, np.nan],
    "sales": [0, 100, 5, 1],
    "rating": [4.0, 5.0, np.nan, 3.0],
    "rating_count": [1, 200, 0, 10],
    "created_at": pd.to_datetime(["2024-01-01", "2024-03-01", "2023-03-01", "2024-02-01"]),
})


def test_numeric_table_reuses_the_rankers_definitions() -> None:
    X, names = numeric_table(PRODUCTS)
    assert {"price_log", "price_pct_cat", "sales_log", "rating_bayes", "recency"} <= set(names)
    col = dict(zip(names, X.T, strict=True))
    ref = product_table(PRODUCTS).columns
    for k in ("price_log", "price_pct_cat", "sales_log", "rating_bayes"):
        np.testing.assert_allclose(col[k], ref[k], equal_nan=True)
    assert col["price_pct_cat"][1] == 1.0 and col["price_pct_cat"][0] < col["price_pct_cat"][2]
    assert col["recency"][1] == 1.0 and col["recency"][2] < col["recency"][0] < 1.0
    # Forced column list (upsert): same columns, NaN where one disappeared.
    X2, names2 = numeric_table(PRODUCTS.drop(columns=["created_at"]), names=names)
    assert names2 == names and np.isnan(X2[:, names.index("recency")]).all()


def test_scaler_zero_fills_missing_and_flags_it() -> None:
    X = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]])
    Z = NumericScaler().fit(X).transform(X)
    assert Z.shape == (3, 4)
    np.testing.assert_allclose(Z[:, 0], [-1.0, 1.0, 0.0])
    np.testing.assert_allclose(Z[:, 2:], [[0, 1], [0, 0], [1, 0]])
    with pytest.raises(ValueError, match="expected 2 numeric columns"):
        NumericScaler().fit(X).transform(X[:, :1])


def test_value_embeddings_encode_each_value_once_and_grow(tmp_path, hash_encoder) -> None:
    enc = hash_encoder
    assert category_values(PRODUCTS)[0] == "Home Kettles"
    emb = ValueEmbeddings().fit(brand_values(PRODUCTS), enc)
    assert enc.calls == [["Acme", "Zeta"]]
    v, has = emb.vectors()
    assert has.tolist() == [True, True, False, True]
    np.testing.assert_allclose(v[0], v[1])
    assert not v[2].any()
    emb.set(np.array([5]), ["Nova"], enc)  # an appended row (4 is left without a value)
    v, has = emb.vectors(np.array([4, 5]))
    assert has.tolist() == [False, True] and enc.calls[-1] == ["Nova"]
    emb.save(tmp_path, "brand")
    back = ValueEmbeddings.load(tmp_path, "brand")
    np.testing.assert_allclose(back.vectors()[0], emb.vectors()[0])
    back.set(np.array([0]), ["Zeta"], enc)
    assert enc.calls[-1] == ["Nova"]  # known value: no new encoding
