"""Catalog: stable rows, id lookup, batch upserts, deletion, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitrine.data.catalog import Catalog
from vitrine.data.schema import PRODUCTS
from vitrine.errors import NotFoundError


def make(n: int = 3) -> Catalog:
    return Catalog(pd.DataFrame({"product_id": [f"p{i}" for i in range(n)], "title": [f"t{i}" for i in range(n)],
                                 "price": np.arange(n, dtype=float)}))


def test_lookup_and_columns():
    cat = make()
    assert len(cat) == 3 and list(cat.products.columns) == PRODUCTS.names
    assert cat.index_of("p2") == 2 and cat.get_index("zz") is None
    with pytest.raises(NotFoundError, match="'zz' is not in the catalog"):
        cat.index_of("zz")
    assert cat.indices(["p1", "zz", "p0"]).tolist() == [1, 0]
    assert cat.indices(["p1", "zz", "p0"], missing="mark").tolist() == [1, -1, 0]
    assert cat.ids.tolist() == ["p0", "p1", "p2"]


def test_text_and_image_handle_every_missing_kind(tmp_path):
    df = pd.DataFrame({"product_id": ["a", "b", "c", "d"], "title": ["x", None, np.nan, pd.NA],
                       "image": ["img/a.png", "https://x/b.jpg", None, "/abs/d.png"]})
    cat = Catalog(df, root=tmp_path)
    assert [cat.text(i, "title") for i in range(4)] == ["x", "", "", ""]
    assert cat.text(0, "brand") == ""
    assert cat.image_path(0) == str(tmp_path / "img/a.png")
    assert cat.image_path(1) == "https://x/b.jpg" and cat.image_path(2) is None and cat.image_path(3) == "/abs/d.png"


def test_upsert_replaces_in_place_and_appends_new():
    cat = make()
    rows = cat.upsert(pd.DataFrame({"product_id": ["p1", "new", "p0"], "title": ["T1", "N", "T0"], "price": [9.0, 1.0, 8.0]}))
    assert rows.tolist() == [1, 3, 0]
    assert len(cat) == 4 and cat.active.tolist() == [True] * 4
    assert cat.text(1, "title") == "T1" and cat.text(3, "title") == "N" and cat.products.at[0, "price"] == 8.0
    assert cat.index_of("new") == 3
    again = cat.upsert(pd.DataFrame({"product_id": ["new"], "title": ["N2"]}))
    assert again.tolist() == [3] and len(cat) == 4 and cat.text(3, "title") == "N2"


def test_upsert_batch_is_one_append():
    cat = make(2)
    new = pd.DataFrame({"product_id": [f"n{i}" for i in range(5000)], "title": "x"})
    rows = cat.upsert(new)
    assert rows.tolist() == list(range(2, 5002)) and len(cat) == 5002 and len(cat.active) == 5002
    assert cat.index_of("n4999") == 5001


def test_upsert_duplicate_ids_in_batch_last_wins():
    cat = make(1)
    rows = cat.upsert(pd.DataFrame({"product_id": ["x", "x"], "title": ["first", "second"]}))
    assert rows.tolist() == [1, 1] and len(cat) == 2 and cat.text(1, "title") == "second"


def test_upsert_into_empty_catalog():
    cat = Catalog(pd.DataFrame({"product_id": pd.Series([], dtype=object)}))
    assert cat.upsert(pd.DataFrame({"product_id": ["a", "b"]})).tolist() == [0, 1]
    assert cat.index_of("b") == 1


def test_delete_keeps_row_and_upsert_revives():
    cat = make()
    assert cat.delete("p1") == 1
    assert cat.active.tolist() == [True, False, True] and cat.index_of("p1") == 1
    cat.upsert(pd.DataFrame({"product_id": ["p1"]}))
    assert cat.active.tolist() == [True, True, True]
    with pytest.raises(NotFoundError):
        cat.delete("nope")


def test_save_load_round_trip(tmp_path):
    cat = make()
    cat.delete("p0")
    cat.save(tmp_path / "m")
    back = Catalog.load(tmp_path / "m", root=tmp_path)
    assert back.ids.tolist() == cat.ids.tolist() and back.active.tolist() == [False, True, True]
    assert back.root == tmp_path and back.index_of("p2") == 2


def test_a_nullable_boolean_column_reads_as_none(tmp_path) -> None:
    """DuckDB (a fit from the store) and Parquet give pandas' nullable booleans, whose pd.NA raises when tested."""
    from vitrine.serve.present import _Columns

    products = pd.DataFrame({"product_id": ["a", "b", "c"], "in_stock": pd.array([True, None, False], dtype="boolean")})
    cat = Catalog(products)
    assert cat.products["in_stock"].tolist() == [True, None, False]
    cat.save(tmp_path)
    assert Catalog.load(tmp_path).products["in_stock"].tolist() == [True, None, False]
    assert _Columns(cat.products).stock.tolist() == [True, True, False]  # missing reads as in stock
