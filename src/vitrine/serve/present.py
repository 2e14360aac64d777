"""From engine rows and dicts to API shapes: clean JSON, image URLs, facet counts."""

from __future__ import annotations

import math
import re
from urllib.parse import quote

import numpy as np
import pandas as pd

from vitrine.engine import Engine, Filters

PRICE_EDGES = (0.0, 25.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
FACET_TOP = 30


def num(v) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if v is None or isinstance(v, bool | np.bool_):
        return None if v is None else float(v)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def text(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    return str(v)


def flag(v) -> bool | None:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return None
    return bool(v)


def image_url(product_id: str, image) -> str | None:
    img = text(image)
    if not img:
        return None
    return f"/images/{quote(product_id, safe='')}"


def product_out(rec: dict) -> dict:
    """A product record as ProductOut fields."""
    pid = str(rec["product_id"])
    tags = rec.get("tags")
    if isinstance(tags, str):
        tags = [t for t in tags.split("|") if t]
    elif tags is None or (isinstance(tags, float) and math.isnan(tags)):
        tags = []
    else:
        tags = [str(t) for t in tags]
    created = rec.get("created_at")
    created = None if created is None or created is pd.NaT or (isinstance(created, float) and math.isnan(created)) \
        else pd.Timestamp(created).isoformat()
    return {
        "product_id": pid,
        **{k: text(rec.get(k)) for k in ("title", "description", "brand", "category", "color")},
        "tags": tags,
        **{k: num(rec.get(k)) for k in ("price", "sales", "rating", "rating_count")},
        "in_stock": flag(rec.get("in_stock")),
        "created_at": created,
        "image_url": image_url(pid, rec.get("image")),
    }


ITEM_FIELDS = ("title", "brand", "category", "color", "price", "rating", "rating_count", "in_stock", "image")


def items(engine: Engine, ids: list[str], scores, explanations=None, offset: int = 0,
          pinned: set[str] | None = None) -> list[dict]:
    """Result items with the fields a result card needs."""
    cols = _columns(engine).items  # plain arrays: a pandas row per item costs more than the rest
    out = []
    for i, pid in enumerate(ids):
        row = engine.catalog_.get_index(pid)
        rec = {k: v[row] for k, v in cols.items()} if row is not None else {}
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


# -- filters and facets ----------------------------------------------------------------
def _lower(s: pd.Series) -> pd.Series:
    return s.astype("object").where(s.notna(), "").astype(str).str.lower()


def filter_masks(p: pd.DataFrame, f: Filters) -> dict[str, np.ndarray]:
    """One boolean mask per active filter over the rows of ``p`` (same rules as the Engine)."""
    masks: dict[str, np.ndarray] = {}
    if f.category:
        masks["category"] = _lower(p["category"]).str.startswith(f.category.lower()).to_numpy()
    for col in ("brand", "color"):
        want = getattr(f, col)
        if want:
            masks[col] = (_lower(p[col]) == want.lower()).to_numpy()
    if f.price_min is not None or f.price_max is not None:
        price = pd.to_numeric(p["price"], errors="coerce").to_numpy(dtype=float)
        m = np.ones(len(p), dtype=bool)
        with np.errstate(invalid="ignore"):
            if f.price_min is not None:
                m &= price >= f.price_min
            if f.price_max is not None:
                m &= price <= f.price_max
        masks["price"] = m
    if f.in_stock is not None:
        stock = p["in_stock"].map(lambda v: True if v is None or v != v else bool(v)).to_numpy(dtype=bool)
        masks["in_stock"] = stock == f.in_stock
    return masks


def _all_but(masks: dict[str, np.ndarray], skip: str, n: int) -> np.ndarray:
    m = np.ones(n, dtype=bool)
    for name, mk in masks.items():
        if name != skip:
            m &= mk
    return m


def _counts(values: pd.Series, top: int = FACET_TOP) -> list[dict]:
    vc = values[values != ""].value_counts()
    vc = vc.iloc[np.lexsort((vc.index.to_numpy(dtype=str), -vc.to_numpy()))][:top]
    return [{"value": str(v), "count": int(c)} for v, c in vc.items()]


class _Columns:
    """Catalog columns of result items, and those the facets count integer-coded, once per catalog
    version: :func:`catalog_changed` drops them after upserts and deletes
    (an upsert may edit rows of the table in place)."""

    def __init__(self, products: pd.DataFrame) -> None:
        self.products = products
        self.cat_codes, self.cat_values = pd.factorize(_text_or_empty(products["category"]), use_na_sentinel=False)
        self.cat_values = np.asarray(self.cat_values, dtype=object)
        self.coded = {}
        for col in ("brand", "color"):
            codes, values = pd.factorize(_text_or_empty(products[col]), use_na_sentinel=False)
            self.coded[col] = (codes, np.asarray(values, dtype=str))
        self.price = pd.to_numeric(products["price"], errors="coerce").to_numpy(dtype=float)
        self.items = {k: products[k].to_numpy(dtype=object) for k in ITEM_FIELDS}
        self.stock = products["in_stock"].map(lambda v: True if v is None or v != v else bool(v)).to_numpy(dtype=bool)
        self._levels: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def level(self, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Per row, a code of the category path cut after ``depth + 1`` parts
        ("" when the path is shorter), and the distinct cut paths."""
        got = self._levels.get(depth)
        if got is None:
            cut = []
            for c in self.cat_values:
                xs = re.split(r"\s*>\s*", c)
                cut.append(" > ".join(x.strip() for x in xs[: depth + 1]) if len(xs) > depth else "")
            codes, values = pd.factorize(pd.Series(cut, dtype=object), use_na_sentinel=False)
            got = self._levels[depth] = (codes[self.cat_codes], np.asarray(values, dtype=str))
        return got


def _text_or_empty(s: pd.Series) -> pd.Series:
    """Values as strings with "" for missing (case kept: facets show values as stored)."""
    return s.astype("object").where(s.notna(), "").astype(str)


_COLUMNS: list = [None]


def catalog_changed() -> None:
    """Forget the coded catalog columns (call after catalog upserts and deletes)."""
    _COLUMNS[0] = None


def _columns(engine: Engine) -> _Columns:
    cols = _COLUMNS[0]
    products = engine.catalog_.products
    if cols is None or cols.products is not products or len(cols.price) != len(products):
        cols = _COLUMNS[0] = _Columns(products)
    return cols


def _code_counts(codes: np.ndarray, values: np.ndarray, top: int = FACET_TOP) -> list[dict]:
    """Like :func:`_counts` over ``values[codes]``: non-empty values by count, then value."""
    cnt = np.bincount(codes, minlength=len(values))
    keep = np.flatnonzero((cnt > 0) & (values != ""))
    order = keep[np.lexsort((values[keep], -cnt[keep]))][:top]
    return [{"value": str(values[i]), "count": int(cnt[i])} for i in order]


def facets(engine: Engine, rows: np.ndarray, f: Filters) -> tuple[dict, int]:
    """Facet counts over candidate rows, each ignoring its own filter; and the match count."""
    rows = rows[engine.catalog_.active[rows]]
    n = len(rows)
    cols = _columns(engine)
    masks = filter_masks(engine.catalog_.products.iloc[rows], f) if f.active() else {}
    everything = _all_but(masks, "", n)
    total = int(everything.sum())

    # category drills down: the children of the filtered prefix (top level without a filter)
    depth = len([x for x in (f.category or "").split(">") if x.strip()])
    codes, values = cols.level(depth)
    out: dict = {"category": _code_counts(codes[rows[everything]], values)}
    for col in ("brand", "color"):
        codes, values = cols.coded[col]
        out[col] = _code_counts(codes[rows[_all_but(masks, col, n)]], values)

    price = cols.price[rows[_all_but(masks, "price", n)]]
    edges = list(PRICE_EDGES) + [math.inf]
    out["price"] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        c = int(((price >= lo) & (price < hi)).sum())
        if c:
            out["price"].append({"min": lo, "max": None if math.isinf(hi) else hi, "count": c})
    stock = pd.Series(cols.stock[rows[_all_but(masks, "in_stock", n)]])
    out["in_stock"] = [{"value": str(k).lower(), "count": int(v)} for k, v in stock.value_counts().items()]
    return out, total


def passes(engine: Engine, product_id: str, f: Filters | None) -> bool:
    """Whether an active product passes the filters."""
    row = engine.catalog_.get_index(product_id)
    if row is None or not engine.catalog_.active[row]:
        return False
    if f is None or not f.active():
        return True
    p = engine.catalog_.products.iloc[[row]]
    return bool(_all_but(filter_masks(p, f), "", 1)[0])
