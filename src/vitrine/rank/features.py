"""Feature assembly: ONE code path for training and serving.

:func:`assemble` turns (query, candidates, shopper) into named feature
columns. The ranker calls it in ``fit`` (on the candidates the retriever
returns for each training query, so the training distribution matches
serving) and in ``rank``; :func:`log_record` packs what was served so future
training can reuse exactly those values.

Feature groups (for explanations) are given by :func:`feature_group`:

========== ==============================================================
text       ``bm25_<field>``, ``cover_<field>``, ``fuzzy_<field>``,
           ``src_lexical*``, ``src_dense*``, ``fused*``, ``title_*``, ``q_*``,
           ``mem_*`` (what judged queries like this one found relevant)
image      ``src_image*``
reviews    ``rating_bayes``, ``rating_count_log``, ``review_*``
price      ``price_*``
popularity ``src_popularity*``, ``sales_log``, ``fresh_days``
personal   ``personal``, ``p_*`` (personalizer features), ``aff_*``
========== ==============================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vitrine.lru import lru_get, lru_put
from vitrine.results import Candidates

GROUPS = ("text", "image", "reviews", "price", "popularity", "personal", "context")
LEX_FIELDS = ("title", "brand", "category", "color", "tags", "description")
_NUM = re.compile(r"\d")


def feature_group(name: str) -> str:
    """The explanation bucket of a feature name."""
    if name.startswith(("src_image", "image")) or name.endswith(("_seen", "_seen_rel")):
        return "image"
    if name.startswith(("src_popularity", "sales", "fresh")):
        return "popularity"
    if name.startswith(("rating", "review")):
        return "reviews"
    if name.startswith("price"):
        return "price"
    if name.startswith(("personal", "p_", "aff_")):
        return "personal"
    if name.startswith(("ctx_",)):
        return "context"
    return "text"


@dataclass
class ProductTable:
    """Per-catalog-row product features computed once at fit (aligned to rows).

    Attributes
    ----------
    columns : name -> float32 array (n_products,).
    attrs : per row, lower-cased (brand, color, leaf category) strings.
    """

    columns: dict[str, np.ndarray]
    attrs: dict[str, np.ndarray]
    _codes: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def codes(self, attr: str) -> tuple[np.ndarray, np.ndarray, int]:
        """Integer codes of one attribute: (codes per row, the distinct values,
        the code of "" or -1); a missing value (None) has code -1. Built on
        first use, so per-request shopper features are bincounts over small
        integers instead of pandas value_counts over strings."""
        got = self._codes.get(attr)
        vals = self.attrs[attr]
        if got is None or got[3] is not vals:
            codes, uniques = pd.factorize(pd.Series(vals, dtype=object), use_na_sentinel=True)
            uniques = np.asarray(uniques, dtype=object)
            empty = np.flatnonzero(uniques == "")
            got = (codes.astype(np.int64), uniques, int(empty[0]) if len(empty) else -1, vals)
            self._codes[attr] = got
        return got[0], got[1], got[2]

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        n = len(next(iter(self.columns.values()))) if self.columns else 0
        ok = rows < n
        out = {}
        for k, v in self.columns.items():
            col = np.full(len(rows), np.nan, np.float32)
            col[ok] = v[rows[ok]]
            out[k] = col
        return out


def _num(s: pd.Series) -> np.ndarray:
    return pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def product_table(products: pd.DataFrame, reviews: pd.DataFrame | None = None) -> ProductTable:
    """Product-only features: price percentile in category, Bayesian rating,
    sales, review signals, freshness."""
    n = len(products)
    cols: dict[str, np.ndarray] = {}
    price = _num(products["price"]) if "price" in products else np.full(n, np.nan)
    cat = products["category"].fillna("").astype(str) if "category" in products else pd.Series([""] * n)
    leaf = cat.str.split(">").str[-1].str.strip().str.lower()
    if np.isfinite(price).any():
        pr = pd.Series(price)
        cols["price_pct_cat"] = pr.groupby(leaf.to_numpy()).rank(pct=True).to_numpy(np.float32)
        med = pr.groupby(leaf.to_numpy()).transform("median").to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["price_rel_cat"] = np.log(price / med).astype(np.float32)
        cols["price_log"] = np.log1p(np.maximum(price, 0)).astype(np.float32)
    rating = _num(products["rating"]) if "rating" in products else np.full(n, np.nan)
    rcount = _num(products["rating_count"]) if "rating_count" in products else np.full(n, np.nan)
    if np.isfinite(rating).any():
        m = 10.0
        mu = float(np.nanmean(rating))
        rc = np.nan_to_num(rcount, nan=0.0)
        cols["rating_bayes"] = ((np.nan_to_num(rating, nan=mu) * rc + mu * m) / (rc + m)).astype(np.float32)
        cols["rating_count_log"] = np.log1p(rc).astype(np.float32)
    sales = _num(products["sales"]) if "sales" in products else np.full(n, np.nan)
    if np.isfinite(sales).any():
        cols["sales_log"] = np.log1p(np.maximum(sales, 0)).astype(np.float32)  # unknown stays NaN, not 0 sales
    if "created_at" in products and products["created_at"].notna().any():
        ts = pd.to_datetime(products["created_at"], errors="coerce")
        cols["fresh_days"] = ((ts.max() - ts).dt.total_seconds() / 86400.0).to_numpy(np.float32, na_value=np.nan)
    if reviews is not None and len(reviews):
        ids = pd.Index(products["product_id"])
        r = reviews.assign(_row=ids.get_indexer(reviews["product_id"]))
        r = r[r["_row"] >= 0]
        cnt = np.bincount(r["_row"], minlength=n).astype(np.float32)
        cols["review_count_log"] = np.log1p(cnt)
        if "rating" in r and r["rating"].notna().any():
            rr = r.dropna(subset=["rating"])
            s = np.bincount(rr["_row"], weights=rr["rating"].astype(float), minlength=n)
            c = np.bincount(rr["_row"], minlength=n)
            mu = float(rr["rating"].mean())
            cols["review_rating_bayes"] = ((s + 5 * mu) / (c + 5)).astype(np.float32)
    attrs = {}
    for col in ("brand", "color"):
        attrs[col] = (products[col].fillna("").astype(str).str.lower().to_numpy(dtype=object)
                      if col in products else np.full(n, "", dtype=object))
    attrs["leaf"] = leaf.to_numpy(dtype=object)
    if "tags" in products:
        # Tag slots (tags are "|"-separated; slot i is often one attribute, e.g. style).
        tags = products["tags"].fillna("").astype(str).str.lower().str.split("|")
        for i in range(1, 5):
            attrs[f"tag{i}"] = np.asarray([t[i].strip() if len(t) > i else "" for t in tags], dtype=object)
    return ProductTable(cols, attrs)


def _query_terms(lex, query: str) -> tuple[list[int], list[list[int]], int]:
    """Vocabulary columns of the query tokens, fuzzy expansions, and token count."""
    from vitrine.features.lexical import tokenize

    toks = tokenize(query)
    vocab = lex.vocab_
    exact = [vocab[t] for t in toks if t in vocab]
    fuzzy: list[list[int]] = []
    prefixes = getattr(lex, "_vitrine_prefix", None)
    if prefixes is None or prefixes[0] != len(vocab):
        pm: dict[str, list[int]] = {}
        for t, c in vocab.items():
            if len(t) >= 4 and not _NUM.search(t):
                pm.setdefault(t[:4], []).append(c)
        prefixes = (len(vocab), pm)
        try:
            lex._vitrine_prefix = prefixes
        except AttributeError:  # pragma: no cover
            pass
    for t in toks:
        cand = list(prefixes[1].get(t[:4], [])) if len(t) >= 4 else []
        if t in vocab:
            cand.append(vocab[t])
        fuzzy.append(cand[:50])
    return exact, fuzzy, len(toks)


def _minmax_rank(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value over the max in the list, and rank (0 = best) within the list."""
    x = np.nan_to_num(v.astype(np.float64), nan=-np.inf)
    mx = np.max(x) if len(x) else 0.0
    rel = np.where(np.isfinite(x), x / mx, np.nan) if np.isfinite(mx) and mx > 0 else np.full(len(x), np.nan)
    rank = np.empty(len(x), np.float32)
    rank[np.argsort(-x, kind="stable")] = np.arange(len(x), dtype=np.float32)
    return rel.astype(np.float32), rank


def _csr(lex, fld: str, m):
    """Row-major copy of a field's BM25 matrix, kept on the index until the
    matrix object is replaced (append/replace build new ones): gathering a
    few hundred candidate rows from CSC touches every stored value."""
    cache = getattr(lex, "_vitrine_csr", None)
    if cache is None:
        cache = {}
        try:
            lex._vitrine_csr = cache
        except AttributeError:  # pragma: no cover
            pass
    got = cache.get(fld)
    if got is None or got[0] is not m:
        csr = m.tocsr()
        csr.sum_duplicates()
        got = cache[fld] = (m, csr)
    return got[1]


def _row_entries(csr, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``csr.indices``/``csr.data`` of the stored entries of ``rows``
    (row by row, in order), and how many each row has."""
    start = csr.indptr[rows]
    lens = csr.indptr[rows + 1] - start
    return np.repeat(start - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum())), lens


def _lexical_features(lex, rows: np.ndarray, exact: list[int], fuzzy: list[list[int]],
                      n_tok: int) -> dict[str, np.ndarray]:
    """Per-field BM25 of the query terms, exact and fuzzy coverage, for each row.

    For each field: ``bm25_<field>`` sums the row's term scores in query-term
    order in float32 (a term repeated in the query counts twice, as scipy's
    column slice + row sum did), ``cover_<field>`` is the share of query terms
    with a nonzero score, ``fuzzy_<field>`` the share of query tokens with a
    nonzero score on any term sharing their 4-letter prefix. A row whose
    field is empty gets NaN in all three: "no text" is not "no match", and a
    model must be able to tell a product without a description from one
    whose description is about something else.
    """
    n = len(rows)
    ok = rows < lex.n_docs_
    r = rows[ok]
    nr = len(r)
    denom = max(n_tok, 1)
    need = sorted({c for c in exact} | {c for cols in fuzzy for c in cols})
    colpos = {c: j for j, c in enumerate(need)}
    ex = np.asarray([colpos[c] for c in exact], dtype=np.int64)
    fz_cols = [np.unique(np.asarray([colpos[c] for c in cols], dtype=np.int64)) for cols in fuzzy if cols]
    lut = None
    if need:
        lut = np.full(max(need) + 1, -1, np.int64)
        lut[np.asarray(need, dtype=np.int64)] = np.arange(len(need))
    out: dict[str, np.ndarray] = {}
    for fld, m in lex.matrices_.items():
        bm = np.zeros(n, np.float32)
        cov = np.zeros(n, np.float32)
        fz = np.zeros(n, np.float32)
        empty = np.zeros(n, bool)
        if nr:
            csr = _csr(lex, fld, m)
            idx, lens = _row_entries(csr, r)
            empty[ok] = lens == 0
        if nr and need:
            # The candidates' stored entries: keep those on query columns.
            tot = len(idx)
            cols = csr.indices[idx]
            inside = cols < len(lut)
            j = np.full(tot, -1, np.int64)
            j[inside] = lut[cols[inside]]
            sel = j >= 0
            dense = np.zeros((nr, len(need)), np.float32)
            dense[np.repeat(np.arange(nr), lens)[sel], j[sel]] = csr.data[idx[sel]]
            nz = dense != 0
            if len(ex):
                acc = np.zeros(nr, np.float32)
                for jj in ex:
                    acc += dense[:, jj]
                bm[ok] = acc
                cov[ok] = nz[:, ex].sum(axis=1) / denom
            if fz_cols:
                hits = np.zeros(nr, np.float32)
                for jj in fz_cols:
                    hits += nz[:, jj].any(axis=1)
                fz[ok] = hits / denom
        out[f"bm25_{fld}_rel"], _ = _minmax_rank(bm)  # within the list an empty field scores as a miss
        for v in (bm, cov, fz):
            v[empty] = np.nan
        out[f"bm25_{fld}"] = bm
        out[f"cover_{fld}"] = cov
        out[f"fuzzy_{fld}"] = fz
    return out


# Names made by _title_order_features and the trigram cover beside it.
TITLE_ORDER = ("title_len", "title_head", "title_head_pos", "title_first_pos", "title_idf_cover", "title_rare",
               "title_bigram", "title_num", "tri_cover_title")


def _title_order_features(lex, rows: np.ndarray, query: str) -> dict[str, np.ndarray]:
    """Title features that need token order or per-token weight, which BM25 sums lose.

    ``title_len`` tokens in the title; ``title_head`` whether the query's
    head word (its last word without digits: "drill" in "cordless drill
    18v") is in the title and ``title_head_pos`` where (share of the title
    before it; 1.5 when absent); ``title_first_pos`` the same for the first
    query word found; ``title_idf_cover`` the IDF-weighted share of query
    words found and ``title_rare`` whether its rarest word is;
    ``title_bigram`` the share of adjacent query-word pairs found adjacent;
    ``title_num`` the share of query words with digits found (-1: none).
    """
    from vitrine.features.lexical import tokenize

    n = len(rows)
    seq = getattr(lex, "sequences_", None)
    toks = tokenize(query)
    if seq is None or not toks or not n:
        return {}
    indptr, allcols = seq
    ok = rows < len(indptr) - 1
    r = np.where(ok, rows, 0)
    start, stop = indptr[r], indptr[r + 1]
    lens = np.where(ok, stop - start, 0)
    tot = int(lens.sum())
    owner = np.repeat(np.arange(n), lens)
    pos = np.arange(tot) - np.repeat(np.cumsum(lens) - lens, lens)
    tok = allcols[np.repeat(start, lens) + pos] if tot else np.zeros(0, np.int64)
    q = np.asarray([lex.vocab_.get(t, -1) for t in toks], np.int64)
    df = lex.stats_["title"]["df"]
    # A catalog without titles has an empty vocabulary and df.
    known = (q >= 0) & (q < len(df))
    qdf = np.zeros(len(q)) if not len(df) else np.where(known, df[np.where(known, q, 0)].astype(np.float64), 0.0)
    idf = np.log1p((lex.n_docs_ - qdf + 0.5) / (qdf + 0.5))
    present = np.zeros((n, len(q)), bool)
    for j, c in enumerate(q):
        if c >= 0:
            present[:, j] = np.bincount(owner, weights=tok == c, minlength=n) > 0
    flen = np.maximum(lens, 1).astype(np.float64)

    def first_pos(mask):
        out = np.full(n, np.inf)
        np.minimum.at(out, owner[mask], pos[mask])
        return np.where(np.isfinite(out), out / flen, 1.5)

    head = next((j for j in range(len(toks) - 1, -1, -1) if not _NUM.search(toks[j])), len(toks) - 1)
    out = {
        "title_len": lens.astype(np.float32),
        "title_head": present[:, head].astype(np.float32),
        "title_head_pos": first_pos(tok == q[head]).astype(np.float32) if q[head] >= 0 else np.full(n, 1.5, np.float32),
        "title_first_pos": first_pos(np.isin(tok, q[q >= 0])).astype(np.float32),
        "title_idf_cover": (present @ idf / max(idf.sum(), 1e-9)).astype(np.float32),
        "title_rare": present[:, int(np.argmax(idf))].astype(np.float32),
    }
    pairs = {(a, b) for a, b in zip(q[:-1].tolist(), q[1:].tolist(), strict=True) if a >= 0 and b >= 0}
    n_pairs = len(set(zip(toks[:-1], toks[1:], strict=True)))
    bigram = np.zeros(n, np.float64)
    if pairs and tot > 1:
        same = owner[:-1] == owner[1:]
        for a, b in pairs:
            hit = same & (tok[:-1] == a) & (tok[1:] == b)
            bigram += np.bincount(owner[:-1][hit], minlength=n) > 0
    out["title_bigram"] = (bigram / n_pairs if n_pairs else np.full(n, -1.0)).astype(np.float32)
    digits = [j for j, t in enumerate(toks) if _NUM.search(t)]
    out["title_num"] = (present[:, digits].mean(1) if digits else np.full(n, -1.0)).astype(np.float32)
    return out


def assemble(
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
    memo: QueryFeatureMemo | None = None,
    memory=None,
) -> dict[str, np.ndarray]:
    """Feature columns, each float32 of shape (len(cands.rows),).

    Parameters
    ----------
    engine : fitted Engine (uses ``retriever_.lexical_`` and ``personal_``).
    query : query text (None for image-only or browsing).
    cands : candidates with per-source scores.
    personal : the personalizer's affinity score for each row, or None.
    user_key : pseudonymous shopper key (for ``personal_.features``).
    table : product features from :func:`product_table` (skipped when None).
    context : extra scalar context features (``ctx_<name>``).
    history : the shopper's recent products (rows, oldest first); default:
        the personalizer's live ``recent_`` (training passes the history
        before the logged page, so no label leaks into the features).
    use_personal_model : add ``p_*`` from ``personal_.features`` when it exists.
    exposure : the shopper's logged impressions before the page as (rows,
        examination propensity of their position, clicked 0/1), for
        :func:`exposure_affinities` (``lift_*`` features).
    memo : a :class:`QueryFeatureMemo` keeping the query-product features of
        recent (query, candidates) (they do not depend on the shopper).
    memory : a :class:`vitrine.rank.query_memory.MemoryView` of the judged
        queries (``mem_*`` features), or None.
    """
    rows = np.asarray(cands.rows, dtype=np.int64)
    n = len(rows)
    key = memo.key(engine, query, cands, table) if memo is not None else None
    qp = memo.get(key) if key is not None else None
    if qp is None:
        qp = _query_product_features(engine, query, cands, table, rows)
        if memory is not None:
            qp.update(memory.features(engine, query, rows))
        if key is not None:
            memo.put(key, qp)
    f = dict(qp)  # the shopper's features below go into this request's copy only
    return add_shopper_features(f, engine, rows, personal, user_key, table, history, exposure,
                                use_personal_model, context)


def add_shopper_features(f: dict[str, np.ndarray], engine, rows: np.ndarray, personal, user_key, table, history,
                         exposure, use_personal_model: bool, context, *, history_fn=None,
                         exposure_fn=None) -> dict[str, np.ndarray]:
    """The shopper-product and context columns of :func:`assemble`, added to ``f``
    (``history_fn``/``exposure_fn`` replace :func:`history_affinities` and
    :func:`exposure_affinities`, for the reference implementation of the tests)."""
    n = len(rows)
    history_fn = history_fn or history_affinities
    exposure_fn = exposure_fn or exposure_affinities
    # -- shopper-product ------------------------------------------------------
    f["personal"] = (np.asarray(personal, dtype=np.float32) if personal is not None
                     else np.full(n, np.nan, np.float32))
    pers = getattr(engine, "personal_", None)
    if user_key and table is not None:
        if history is None:
            history = live_history(pers, user_key)
        f.update(history_fn(history, rows, table))
        if exposure is not None:
            f.update(exposure_fn(*exposure, rows, table))
    pf = getattr(pers, "features", None)
    if user_key and callable(pf) and use_personal_model:
        try:
            for k, v in (pf(user_key, rows) or {}).items():
                f[f"p_{k}"] = np.asarray(v, dtype=np.float32)
        except Exception:  # noqa: BLE001 - a broken personal model must not break search
            pass
    # -- context --------------------------------------------------------------
    f["ctx_has_user"] = np.full(n, float(bool(user_key)), np.float32)
    f["ctx_n_cands"] = np.full(n, float(n), np.float32)
    for k, v in (context or {}).items():
        f[f"ctx_{k}"] = np.full(n, float(v), np.float32)
    return f


def _query_product_features(engine, query: str | None, cands: Candidates, table: ProductTable | None,
                            rows: np.ndarray) -> dict[str, np.ndarray]:
    """The features of :func:`assemble` that depend on the query and the products only."""
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
        f.update(_lexical_features(lex, rows, exact, fuzzy, n_tok))
        f["title_all_terms"] = (f.get("cover_title", np.zeros(n)) >= 0.999).astype(np.float32)
        f["q_oov"] = np.full(n, (n_tok - len(exact)) / max(n_tok, 1), np.float32)
        f.update(_title_order_features(lex, rows, query))
        tri = getattr(engine.retriever_, "ngram_", None)
        if tri is not None and "title" in tri.matrices_:
            # Character-trigram coverage: misspelt and compound words still overlap.
            grams = tri._tokens(query)
            t_exact = [tri.vocab_[g] for g in grams if g in tri.vocab_]
            f["tri_cover_title"] = _lexical_features(tri, rows, t_exact, [], len(grams))["cover_title"]
    f["q_len"] = np.full(n, float(n_tok), np.float32)
    f["q_has_digit"] = np.full(n, float(bool(query) and bool(_NUM.search(query or ""))), np.float32)
    # -- exact attribute match: query text vs brand / colour / leaf -------
    if table is not None and query:
        ql = f" {query.lower()} "
        for a in table.attrs:
            codes, uniques, _ = table.codes(a)
            ok = rows < len(codes)
            c = codes[rows[ok]]
            u, inv = np.unique(c, return_inverse=True)  # test each distinct value once
            # NaN where the product has no value: unknown, not a mismatch.
            hit_u = np.asarray([np.nan if x < 0 or not uniques[x] else float(f" {uniques[x]} " in ql) for x in u],
                               dtype=np.float32)
            hit = np.full(n, np.nan, np.float32)
            hit[ok] = hit_u[inv.ravel()] if len(u) else np.nan
            f[f"match_{a}"] = hit
    # -- product ------------------------------------------------------------
    if table is not None:
        f.update(table.take(rows))
    return f


class QueryFeatureMemo:
    """The query-product features of recent (query, candidates), shared by every shopper.

    They are a pure function of the query, the candidates (rows and retrieval
    scores), the product table and the retriever's indexes, so a repeated
    query (whose candidates the retriever keeps too) skips BM25 gathers and
    title matching: about a third of a search's feature time. Arrays are
    read-only: every caller shares them. A changed table or retriever
    (catalog upsert, delete, reload) empties the memo.
    """

    SIZE = 1024

    def __init__(self, size: int = SIZE) -> None:
        from collections import OrderedDict

        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._refs: tuple = ()  # (table, retriever) the kept features were computed with
        self._version = None

    def key(self, engine, query, cands: Candidates, table) -> tuple | None:
        """The memo key of (query, candidates), or None when the memo keeps nothing."""
        if self.size <= 0:
            return None
        retriever = getattr(engine, "retriever_", None)
        version = getattr(retriever, "_version", None)
        if not self._refs or self._refs[0] is not table or self._refs[1] is not retriever or self._version != version:
            self._items.clear()
            self._refs, self._version = (table, retriever), version
        rows = np.ascontiguousarray(cands.rows, dtype=np.int64)
        scores = np.ascontiguousarray(cands.scores, dtype=np.float64)
        return (query, rows.tobytes(), scores.tobytes())

    def get(self, key: tuple) -> dict[str, np.ndarray] | None:
        return lru_get(self._items, key)

    def put(self, key: tuple, feats: dict[str, np.ndarray]) -> None:
        for v in feats.values():
            v.flags.writeable = False
        lru_put(self._items, key, feats, self.size)


HISTORY = 50  # recent positive events the shopper features look at


def live_history(pers, user_key: str | None, n: int = HISTORY) -> np.ndarray:
    """The shopper's last ``n`` positive products (rows, oldest first) from the
    personalizer's live profile (``profiles_`` or the foundation ``recent_``)."""
    if pers is None or not user_key:
        return np.zeros(0, np.int64)
    rows = None
    prof = getattr(pers, "profiles_", None)
    if prof is not None and hasattr(prof, "get"):
        p = prof.get(user_key)
        rows = getattr(p, "rows", None) if p is not None else None
    if rows is None:
        rows = getattr(pers, "recent_", {}).get(user_key)
    return np.asarray(list(rows or ())[-n:], dtype=np.int64)


def _lookup(codes: np.ndarray, rows: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """``values[codes[rows]]`` for rows inside the table (0 elsewhere and for
    unknown codes), as float32 of shape (n,)."""
    col = np.zeros(n, np.float32)
    ok = rows < len(codes)
    c = codes[rows[ok]]
    col[ok] = np.where(c >= 0, values[np.maximum(c, 0)], 0.0)
    return col


def history_affinities(history: np.ndarray, rows: np.ndarray, table: ProductTable) -> dict[str, np.ndarray]:
    """Shopper-product features from the shopper's recent products (catalog rows,
    oldest first): the share of that history with the candidate's leaf
    category, brand and colour (``aff_<attr>``), the same over the last 5
    (``aff_<attr>_recent``), and the candidate's log price over the history's
    median (``aff_price_gap``). Used with the personalizer's live history at
    serving and with the history before each logged page in training."""
    n = len(rows)
    out: dict[str, np.ndarray] = {"aff_history_len": np.full(n, float(len(history)), np.float32)}
    hist = np.asarray(history, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    for a in table.attrs:
        codes, uniques, empty = table.codes(a)
        h = hist[hist < len(codes)]
        for suffix, hh in (("", h), ("_recent", h[-5:])):
            hc = codes[hh]
            hc = hc[hc >= 0]
            if len(hc):
                # count / total in float64, as value_counts(normalize=True) does
                share = np.bincount(hc, minlength=len(uniques)) / len(hc)
                if empty >= 0:
                    share[empty] = 0.0
                out[f"aff_{a}{suffix}"] = _lookup(codes, rows, share, n)
            else:
                out[f"aff_{a}{suffix}"] = np.zeros(n, np.float32)
    pl = table.columns.get("price_log")
    if pl is not None:
        seen = pl[hist[hist < len(pl)]]
        seen = seen[np.isfinite(seen)]  # products without a price say nothing of the shopper's band
        med = float(np.median(seen)) if len(seen) else np.nan
        ok = rows < len(pl)
        col = np.full(n, np.nan, np.float32)
        col[ok] = pl[rows[ok]] - med
        out["aff_price_gap"] = col
    return out


LIFT_PRIOR = 2.0  # pseudo-examinations pulling an attribute's click rate to the shopper's mean


def exposure_affinities(seen: np.ndarray, theta: np.ndarray, clicked: np.ndarray, rows: np.ndarray,
                        table: ProductTable) -> dict[str, np.ndarray]:
    """Shopper-product features from what the shopper was shown and clicked
    (debiased by examination): for each attribute (leaf, brand, colour, tag
    slots) the log of the shopper's click rate on the candidate's value over
    their overall rate, ``log((c_v + a r) / (E_v + a) / r)`` with ``E_v`` the
    expected examinations (sum of theta) of impressions with that value,
    ``c_v`` their clicks and ``r`` the shopper's overall rate (``lift_<attr>``);
    and a price-sensitivity estimate, the mean in-category relative price of
    clicked minus examined products, times the candidate's (``lift_price``).
    Unlike shares of clicks, lifts do not reward what the shopper merely
    searched for often."""
    n = len(rows)
    out: dict[str, np.ndarray] = {}
    seen = np.asarray(seen, dtype=np.int64)
    theta = np.asarray(theta, dtype=np.float64)
    clicked = np.asarray(clicked, dtype=np.float64)
    e_all, c_all = float(theta.sum()), float(clicked.sum())
    r = (c_all + 0.5) / (e_all + 5.0)
    out["lift_n_clicks"] = np.full(n, c_all, np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    # NaN propensities add nothing to a group's examinations (as a pandas group sum skips them).
    theta_w = np.where(np.isnan(theta), 0.0, theta)
    for a in table.attrs:
        codes, uniques, empty = table.codes(a)
        s_ok = seen < len(codes)
        sc = codes[seen[s_ok]] if len(seen) else np.zeros(0, np.int64)
        valid = sc >= 0
        if not valid.any():
            out[f"lift_{a}"] = np.zeros(n, np.float32)
            continue
        sc = sc[valid]
        k = len(uniques)
        e = np.bincount(sc, weights=theta_w[s_ok][valid], minlength=k)
        c = np.bincount(sc, weights=clicked[s_ok][valid], minlength=k)
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = np.log((c + LIFT_PRIOR * r) / (e + LIFT_PRIOR) / r)
        # Values the shopper never saw, "", and undefined lifts read 0.
        lift = np.where(np.isnan(lift) | (np.bincount(sc, minlength=k) == 0), 0.0, lift)
        if empty >= 0:
            lift[empty] = 0.0
        out[f"lift_{a}"] = _lookup(codes, rows, lift, n)
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


def to_matrix(feats: Mapping[str, np.ndarray], names: list[str], n: int) -> np.ndarray:
    """Stack features in the order of ``names`` (missing ones are NaN)."""
    X = np.full((n, len(names)), np.nan, dtype=np.float32)
    for j, name in enumerate(names):
        v = feats.get(name)
        if v is not None:
            X[:, j] = v
    return X


def log_record(
    request_id: str, query: str | None, user_key: str | None, product_ids, scores: np.ndarray,
    feats: Mapping[str, np.ndarray], order: np.ndarray, k: int, first: int = 1,
) -> list[dict]:
    """One record per shown result: position (from ``first``), score and every
    feature value exactly as served (for later training on served features).
    A missing or non-finite value is NaN (the store writes it as JSON null)."""
    shown = np.asarray(order[:k], dtype=np.int64)
    names = list(feats)
    # One stacking call, then the shown rows: this runs on every served page.
    m = np.array([feats[name] for name in names], np.float64)[:, shown].T
    m[~np.isfinite(m)] = np.nan
    out = []
    for pos, (i, row) in enumerate(zip(shown.tolist(), m.tolist(), strict=True), start=first):
        out.append({
            "request_id": request_id, "query": query, "user_id": user_key, "position": pos,
            "product_id": str(product_ids[i]), "score": float(scores[i]),
            "features": dict(zip(names, row, strict=True)),
        })
    return out
