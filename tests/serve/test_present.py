"""Result items and facet counts from plain / integer-coded catalog columns
equal the pandas versions they replaced (kept below as the reference)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from vitrine.data.catalog import Catalog
from vitrine.engine import Filters
from vitrine.serve import present
from vitrine.serve.present import PRICE_EDGES, _all_but, _counts, filter_masks, flag, image_url, num, text


@pytest.fixture()
def engine():
    rng = np.random.default_rng(3)
    n = 600
    cats = ["Shoes > Running > Trail", "Shoes > Running", "shoes > Walking", "Home > Lamps", "Home", None, "",
            "Home>Desk > Small", "Clothing > Jackets > Rain"]
    products = pd.DataFrame({
        "product_id": [f"p{i}" for i in range(n)],
        "title": ["t"] * n,
        "category": rng.choice(np.asarray(cats, dtype=object), size=n),
        "brand": rng.choice(np.asarray(["Acme", "acme", "Zenith", None, "", "Nordic Co"], dtype=object), size=n),
        "color": rng.choice(np.asarray(["red", "Red", "blue", None, "navy blue"], dtype=object), size=n),
        "price": np.where(rng.random(n) < 0.05, np.nan, np.round(rng.gamma(2.0, 60.0, size=n), 2)),
        "in_stock": rng.choice(np.asarray([True, False, None], dtype=object), size=n),
        "rating": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 5, size=n)),
        "image": rng.choice(np.asarray(["img/a.jpg", None, "https://x/y.png"], dtype=object), size=n),
    })
    e = SimpleNamespace(catalog_=Catalog(products))
    e.catalog_.active[rng.choice(n, size=40, replace=False)] = False
    present.catalog_changed()
    return e


FILTERS = [Filters(), Filters(category="shoes"), Filters(category="Shoes > Running"), Filters(brand="acme"),
           Filters(color="RED", price_min=20), Filters(price_max=100, in_stock=True), Filters(in_stock=False),
           Filters(category="home", brand="zenith", color="blue", price_min=10, price_max=500, in_stock=True)]


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: str({k: v for k, v in f.__dict__.items() if v is not None}))
def test_facets_match_reference(engine, f: Filters) -> None:
    rng = np.random.default_rng(4)
    for size in (0, 1, 50, 600):
        rows = rng.choice(len(engine.catalog_), size=size, replace=False)
        assert present.facets(engine, rows, f) == reference_facets(engine, rows, f)


def test_facets_follow_catalog_changes(engine) -> None:
    rows = np.arange(len(engine.catalog_))
    present.facets(engine, rows, Filters())
    engine.catalog_.products.at[0, "brand"] = "Brand New"
    present.catalog_changed()
    assert present.facets(engine, rows, Filters()) == reference_facets(engine, rows, Filters())


def test_items_match_reference(engine) -> None:
    rng = np.random.default_rng(5)
    ids = list(engine.catalog_.products["product_id"])
    for size in (0, 1, 10, 40):
        page = [str(x) for x in rng.choice(ids, size=size, replace=False)] + ["unknown"]
        scores = rng.random(len(page)).tolist()
        expl = [{"text": 1.0, "base": float("nan")} for _ in page]
        got = present.items(engine, page, scores, expl, offset=5, pinned=set(page[:1]))
        assert got == reference_items(engine, page, scores, expl, offset=5, pinned=set(page[:1]))


def reference_items(engine, ids, scores, explanations=None, offset=0, pinned=None) -> list[dict]:
    products = engine.catalog_.products
    out = []
    for i, pid in enumerate(ids):
        row = engine.catalog_.get_index(pid)
        rec = products.iloc[row] if row is not None else {}
        expl = None
        if explanations is not None and explanations[i] is not None:
            expl = {str(k): num(v) for k, v in explanations[i].items()}
        out.append({
            "product_id": pid,
            "position": offset + i + 1,
            "score": num(scores[i]) if scores is not None and i < len(scores) else None,
            **{k: text(rec.get(k)) for k in ("title", "brand", "category", "color")},
            **{k: num(rec.get(k)) for k in ("price", "rating", "rating_count")},
            "in_stock": flag(rec.get("in_stock")),
            "image_url": image_url(pid, rec.get("image")),
            "pinned": bool(pinned and pid in pinned),
            "explanation": expl,
        })
    return out


# -- the reference: pandas facets as of commit c112d19 ---------------------------------------
def reference_facets(engine: Engine, rows: np.ndarray, f: Filters) -> tuple[dict, int]:
    rows = rows[engine.catalog_.active[rows]]
    p = engine.catalog_.products.iloc[rows]
    n = len(p)
    masks = filter_masks(p, f)
    total = int(_all_but(masks, "", n).sum())

    # category drills down: the children of the filtered prefix (top level without a filter)
    cat = p["category"].astype("object").where(p["category"].notna(), "").astype(str)
    m = _all_but(masks, "", n)
    depth = len([x for x in (f.category or "").split(">") if x.strip()])
    parts = cat[m].str.split(r"\s*>\s*", regex=True)
    level = parts.map(lambda xs: " > ".join(x.strip() for x in xs[: depth + 1]) if len(xs) > depth else "")
    out: dict = {"category": _counts(level)}
    for col in ("brand", "color"):
        v = p[col].astype("object").where(p[col].notna(), "").astype(str)
        out[col] = _counts(v[_all_but(masks, col, n)])

    price = pd.to_numeric(p["price"], errors="coerce").to_numpy(dtype=float)[_all_but(masks, "price", n)]
    edges = list(PRICE_EDGES) + [math.inf]
    out["price"] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        c = int(((price >= lo) & (price < hi)).sum())
        if c:
            out["price"].append({"min": lo, "max": None if math.isinf(hi) else hi, "count": c})
    stock = p["in_stock"].map(lambda v: True if v is None or v != v else bool(v))[_all_but(masks, "in_stock", n)]
    out["in_stock"] = [{"value": str(k).lower(), "count": int(v)} for k, v in stock.value_counts().items()]
    return out, total
