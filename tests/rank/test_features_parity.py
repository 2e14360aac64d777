"""The NumPy feature assembly gives the same values as the pandas / scipy one it
replaced (kept in ``_reference_features``): training and serving share the
assembly, and a fitted model must see the features it was trained on."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import math

import numpy as np
import pandas as pd
import pytest

from vitrine.features.lexical import BM25Index, tokenize
from vitrine.rank.features import (
    _NUM,
    LIFT_PRIOR,
    ProductTable,
    _minmax_rank,
    _query_terms,
    add_shopper_features,
    assemble,
    exposure_affinities,
    history_affinities,
    product_table,
)
from vitrine.results import Candidates


WORDS = ["running", "runner", "shoes", "shoe", "red", "blue", "leather", "jacket", "jackets", "lamp",
         "desk", "cotton", "wool", "summer", "winter", "classic", "classics", "acme", "zenith", "trail"]
BRANDS = ["acme", "zenith", "Nordic Co", "", "trail"]
COLORS = ["red", "blue", "", "navy blue", "black"]
CATS = ["Shoes > Running", "Shoes > Trail", "Home > Lamps", "Clothing > Jackets", "", "Home > Desk"]


def _products(rng: np.random.Generator, n: int) -> pd.DataFrame:
    def words(k):
        return " ".join(rng.choice(WORDS, size=k))

    return pd.DataFrame({
        "product_id": [f"p{i}" for i in range(n)],
        "title": [words(int(rng.integers(1, 6))) for _ in range(n)],
        "description": [words(int(rng.integers(0, 15))) for _ in range(n)],
        "brand": rng.choice(BRANDS, size=n),
        "color": [None if rng.random() < 0.1 else c for c in rng.choice(COLORS, size=n)],
        "category": rng.choice(CATS, size=n),
        "tags": ["|".join(rng.choice(["sport", "casual", "", "retro", "eco"], size=int(rng.integers(0, 5))))
                 for _ in range(n)],
        "price": np.round(rng.gamma(2.0, 30.0, size=n), 2),
        "rating": rng.uniform(1, 5, size=n),
        "rating_count": rng.integers(0, 50, size=n),
        "sales": rng.integers(0, 500, size=n),
    })


def _docs(products: pd.DataFrame) -> list[dict[str, str]]:
    return [{"title": r.title, "description": r.description, "brand": r.brand, "color": r.color if isinstance(r.color, str) else "",
             "category": r.category.replace(">", " "), "tags": r.tags.replace("|", " ")}
            for r in products.itertuples()]


@pytest.fixture(scope="module")
def shop():
    rng = np.random.default_rng(6)
    products = _products(rng, 400)
    lex = BM25Index().fit(_docs(products))
    engine = SimpleNamespace(retriever_=SimpleNamespace(lexical_=lex), personal_=None)
    return products, product_table(products), engine


def _queries(rng: np.random.Generator) -> list[str]:
    out = ["red running shoes", "shoes shoes red", "acme", "Nordic Co jacket", "navy blue wool", "lamp 40w",
           "runn jack", "unknownword", "red  shoes", "classic classics classic", "Trail trail TRAIL shoes"]
    for _ in range(30):
        out.append(" ".join(rng.choice(WORDS + ["zzz", "3", "navy", "nordic"], size=int(rng.integers(1, 7)))))
    return out


def _assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k, strict=True)


def test_assemble_matches_reference(shop) -> None:
    products, table, engine = shop
    rng = np.random.default_rng(1)
    n = len(products)
    for q in _queries(rng):
        size = int(rng.integers(1, 150))
        rows = rng.choice(n + 5, size=size, replace=bool(rng.random() < 0.3))  # a few rows past the catalog
        src = {"lexical": rng.random(size).astype(np.float32), "dense": rng.normal(size=size).astype(np.float32),
               "popularity": rng.random(size).astype(np.float32)}
        cands = Candidates(rows, rng.random(size), src)
        history = rng.integers(0, n + 3, size=int(rng.integers(0, 60)))
        m = int(rng.integers(0, 300))
        exposure = (rng.integers(0, n + 3, size=m), rng.uniform(0.05, 1.0, size=m),
                    (rng.random(m) < 0.2).astype(np.float64))
        args = dict(personal=rng.random(size), user_key="u1", table=table, history=history, exposure=exposure,
                    context={"hour": 3.0})
        _assert_same(assemble(engine, q, cands, **args), reference_assemble(engine, q, cands, **args))


def test_shopper_features_match_reference_on_edge_cases(shop) -> None:
    products, table, _ = shop
    n = len(products)
    rng = np.random.default_rng(2)
    rows = rng.integers(0, n + 2, size=50)
    histories = [np.zeros(0, np.int64), np.array([3]), np.array([n + 1, n + 2]), rng.integers(0, n, 500)]
    for h in histories:
        _assert_same(history_affinities(h, rows, table), reference_history(h, rows, table))
    exposures = [
        (np.zeros(0, np.int64), np.zeros(0), np.zeros(0)),
        (np.array([1, 1, 2]), np.array([0.5, np.nan, 0.25]), np.array([1.0, 0.0, 0.0])),  # a NaN propensity
        (np.array([n + 1]), np.array([1.0]), np.array([1.0])),  # only rows past the catalog
        (rng.integers(0, n, 2000), rng.uniform(0.01, 1, 2000), (rng.random(2000) < 0.1).astype(float)),
    ]
    for e in exposures:
        _assert_same(exposure_affinities(*e, rows, table), reference_exposure(*e, rows, table))
    empty_rows = np.zeros(0, np.int64)
    _assert_same(history_affinities(histories[3], empty_rows, table), reference_history(histories[3], empty_rows, table))


def test_codes_follow_replaced_attributes(shop) -> None:
    products, _, _ = shop
    table = product_table(products)
    rows = np.arange(20)
    h = np.arange(10)
    table.codes("brand")
    table.attrs["brand"] = np.asarray(["acme"] * len(products), dtype=object)
    _assert_same(history_affinities(h, rows, table), reference_history(h, rows, table))


# -- the reference: pandas / scipy assembly as of c112d19 ------------------------------------
def reference_title_order(lex, rows: np.ndarray, query: str) -> dict[str, np.ndarray]:
    """Row by row over token lists (the title-order features were added after c112d19)."""
    toks = tokenize(query)
    if not toks or not len(rows):
        return {}
    vocab = {c: t for t, c in lex.vocab_.items()}
    df = lex.stats_["title"]["df"]
    dft = {t: float(df[lex.vocab_[t]]) if t in lex.vocab_ else 0.0 for t in toks}
    idf = {t: math.log1p((lex.n_docs_ - dft[t] + 0.5) / (dft[t] + 0.5)) for t in toks}
    w = np.array([idf[t] for t in toks])
    head = next((t for t in reversed(toks) if not _NUM.search(t)), toks[-1])
    rare = toks[int(np.argmax(w))]
    pairs = set(zip(toks, toks[1:]))
    digits = [t for t in toks if _NUM.search(t)]
    keys = ["title_len", "title_head", "title_head_pos", "title_first_pos", "title_idf_cover", "title_rare",
            "title_bigram", "title_num"]
    out = {k: np.zeros(len(rows), np.float32) for k in keys}
    for i, r in enumerate(rows):
        title = [vocab[int(c)] for c in lex.sequence(r)] if r < lex.n_docs_ else []
        have = set(title)
        known = [t for t in toks if t in lex.vocab_]
        first = [j for j, t in enumerate(title) if t in known]
        out["title_len"][i] = len(title)
        out["title_head"][i] = head in have
        out["title_head_pos"][i] = title.index(head) / max(len(title), 1) if head in have else 1.5
        out["title_first_pos"][i] = first[0] / max(len(title), 1) if first else 1.5
        out["title_idf_cover"][i] = sum(x for t, x in zip(toks, w) if t in have) / w.sum()
        out["title_rare"][i] = rare in have
        out["title_bigram"][i] = len(pairs & set(zip(title, title[1:]))) / len(pairs) if pairs else -1.0
        out["title_num"][i] = np.mean([t in have for t in digits]) if digits else -1.0
    return out



def reference_assemble(
    engine,
    query: str | None,
    cands: Candidates,
    personal: np.ndarray | None = None,
    user_key: str | None = None,
    table: ProductTable | None = None,
    context: Mapping[str, float] | None = None,
    history: np.ndarray | None = None,
    use_personal_model: bool = True,
    exposure: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    rows = np.asarray(cands.rows, dtype=np.int64)
    n = len(rows)
    f: dict[str, np.ndarray] = {}
    # -- query-product: retrieval sources ---------------------------------
    for name, vals in cands.sources.items():
        v = np.asarray(vals, dtype=np.float32)
        f[f"src_{name}"] = v
        if name != "popularity":
            f[f"src_{name}_rel"], f[f"src_{name}_rank"] = _minmax_rank(v)
    f["fused"] = np.asarray(cands.scores, dtype=np.float32)
    f["fused_rel"], f["fused_rank"] = _minmax_rank(f["fused"])
    # -- query-product: per-field BM25, exact and fuzzy coverage ----------
    lex = getattr(getattr(engine, "retriever_", None), "lexical_", None)
    n_tok = 0
    if query and lex is not None and n:
        exact, fuzzy, n_tok = _query_terms(lex, query)
        ok = rows < lex.n_docs_
        r = rows[ok]
        for fld, m in lex.matrices_.items():
            sub = m[r] if len(r) else m[:0]
            bm = np.zeros(n, np.float32)
            cov = np.zeros(n, np.float32)
            fz = np.zeros(n, np.float32)
            if exact and len(r):
                part = sub[:, exact]
                bm[ok] = np.asarray(part.sum(axis=1)).ravel()
                cov[ok] = np.asarray((part != 0).sum(axis=1)).ravel() / max(n_tok, 1)
            if len(r) and any(fuzzy):
                hits = np.zeros(len(r), np.float32)
                for cols in fuzzy:
                    if cols:
                        hits += np.asarray((sub[:, cols] != 0).sum(axis=1)).ravel() > 0
                fz[ok] = hits / max(n_tok, 1)
            f[f"bm25_{fld}_rel"], _ = _minmax_rank(bm)
            empty = np.zeros(n, bool)
            empty[ok] = sub.getnnz(axis=1) == 0  # no text in the field: unknown, not a miss
            for v in (bm, cov, fz):
                v[empty] = np.nan
            f[f"bm25_{fld}"] = bm
            f[f"cover_{fld}"] = cov
            f[f"fuzzy_{fld}"] = fz
        f["title_all_terms"] = (f.get("cover_title", np.zeros(n)) >= 0.999).astype(np.float32)
        f["q_oov"] = np.full(n, (n_tok - len(exact)) / max(n_tok, 1), np.float32)
        f.update(reference_title_order(lex, rows, query))
    f["q_len"] = np.full(n, float(n_tok), np.float32)
    f["q_has_digit"] = np.full(n, float(bool(query) and bool(_NUM.search(query or ""))), np.float32)
    # -- exact attribute match: query text vs brand / colour / leaf -------
    if table is not None and query:
        ql = f" {query.lower()} "
        for a, vals in table.attrs.items():
            ok = rows < len(vals)
            hit = np.full(n, np.nan, np.float32)
            hit[ok] = [float(f" {v} " in ql) if v else np.nan for v in vals[rows[ok]]]
            f[f"match_{a}"] = hit
    # -- product ------------------------------------------------------------
    if table is not None:
        f.update(table.take(rows))
    return add_shopper_features(f, engine, rows, personal, user_key, table, history, exposure, use_personal_model,
                                context, history_fn=reference_history, exposure_fn=reference_exposure)


def reference_history(history: np.ndarray, rows: np.ndarray, table: ProductTable) -> dict[str, np.ndarray]:
    n = len(rows)
    out: dict[str, np.ndarray] = {"aff_history_len": np.full(n, float(len(history)), np.float32)}
    hist = np.asarray(history, dtype=np.int64)
    for a, vals in table.attrs.items():
        ok = rows < len(vals)
        h = hist[hist < len(vals)]
        for suffix, hh in (("", h), ("_recent", h[-5:])):
            col = np.zeros(n, np.float32)
            if len(hh):
                share = pd.Series(vals[hh]).value_counts(normalize=True)
                share = share[share.index != ""]
                col[ok] = share.reindex(vals[rows[ok]]).fillna(0.0).to_numpy(np.float32)
            out[f"aff_{a}{suffix}"] = col
    pl = table.columns.get("price_log")
    if pl is not None:
        h = hist[hist < len(pl)]
        med = float(np.nanmedian(pl[h])) if len(h) else np.nan
        ok = rows < len(pl)
        col = np.full(n, np.nan, np.float32)
        col[ok] = pl[rows[ok]] - med
        out["aff_price_gap"] = col
    return out


def reference_exposure(seen: np.ndarray, theta: np.ndarray, clicked: np.ndarray, rows: np.ndarray,
                        table: ProductTable) -> dict[str, np.ndarray]:
    n = len(rows)
    out: dict[str, np.ndarray] = {}
    seen = np.asarray(seen, dtype=np.int64)
    theta = np.asarray(theta, dtype=np.float64)
    clicked = np.asarray(clicked, dtype=np.float64)
    e_all, c_all = float(theta.sum()), float(clicked.sum())
    r = (c_all + 0.5) / (e_all + 5.0)
    out["lift_n_clicks"] = np.full(n, c_all, np.float32)
    for a, vals in table.attrs.items():
        col = np.zeros(n, np.float32)
        ok = rows < len(vals)
        s_ok = seen < len(vals)
        if len(seen) and s_ok.any():
            v = vals[seen[s_ok]]
            e = pd.Series(theta[s_ok]).groupby(v).sum()
            c = pd.Series(clicked[s_ok]).groupby(v).sum()
            lift = np.log((c + LIFT_PRIOR * r) / (e + LIFT_PRIOR) / r)
            lift = lift[lift.index != ""]
            col[ok] = lift.reindex(vals[rows[ok]]).fillna(0.0).to_numpy(np.float32)
        out[f"lift_{a}"] = col
    pr = table.columns.get("price_rel_cat")
    if pr is not None:
        ok = rows < len(pr)
        sens = 0.0
        s_ok = (seen < len(pr))
        if len(seen) and c_all > 0:
            x = np.nan_to_num(pr[seen[s_ok]].astype(np.float64))
            th, cl = theta[s_ok], clicked[s_ok]
            sens = float((cl * x).sum() / max(cl.sum(), 1e-9) - (th * x).sum() / max(th.sum(), 1e-9))
            sens *= cl.sum() / (cl.sum() + 3.0)  # shrink towards 0 with few clicks
        col = np.full(n, np.nan, np.float32)
        col[ok] = sens * pr[rows[ok]]
        out["lift_price"] = col
        out["lift_price_sens"] = np.full(n, sens, np.float32)
    return out
