"""Query completion: logged queries and catalog terms, by popularity and shopper affinity.

Sources
-------
- queries from the store's events table (``query`` column); a query is only
  suggested once at least ``min_users`` distinct shoppers issued it, so a
  query typed by one person (a name, an address) is never shown to others;
- catalog terms: product titles, brands and category names.

Matching is by prefix of the whole text and of each word in it, after NFKC
normalisation and case folding, so "运动" completes "运动鞋" and "run" completes
"trail running shoes". Ranking is popularity (log of searches or sales) plus
the shopper's affinity to the categories and brands behind a suggestion.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from vitrine.serve.rules import normalize_query

KIND_BONUS = {"query": 1.0, "category": 0.6, "brand": 0.5, "product": 0.0}
AFFINITY_WEIGHT = 2.0
EVENT_WEIGHT = {"click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


def _cat_keys(category: str | None) -> list[str]:
    """Every prefix of a category path, normalised: 'a', 'a > b', 'a > b > c'."""
    if not category:
        return []
    parts = [normalize_query(p) for p in str(category).split(">") if p.strip()]
    return [" > ".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class _Entry:
    text: str
    kind: str
    base: float
    tags: frozenset[str]  # "c:<category prefix>", "b:<brand>"


class SuggestIndex:
    """Prefix index over suggestion texts; rebuilt in the background when stale.

    Parameters
    ----------
    min_users : a logged query needs this many distinct shoppers to be suggested.
    max_age_s : rebuild (in a background thread) when older than this.
    """

    def __init__(self, min_users: int = 2, max_age_s: float = 30.0) -> None:
        self.min_users = min_users
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._building = False
        self._built_at = 0.0
        self._keys: list[str] = []
        self._ids = np.zeros(0, dtype=np.int64)
        self._entries: list[_Entry] = []
        self._affinity: dict[str, tuple[float, dict[str, float]]] = {}
        self._base = np.zeros(0)
        self._ever_built = False
        self._build_lock = threading.Lock()

    # -- build --------------------------------------------------------------------
    def build(self, engine) -> None:
        entries: dict[tuple[str, str], _Entry] = {}

        def add(text: str, kind: str, pop: float, tags: set[str]) -> None:
            text = " ".join(str(text).split())
            if not text or len(text) > 200:
                return
            key = (normalize_query(text), kind)
            e = entries.get(key)
            if e is None:
                entries[key] = _Entry(text, kind, pop, frozenset(tags))
            else:
                e.base = max(e.base, pop)
                e.tags = e.tags | frozenset(tags)

        store = engine.store
        q = store.query(
            "SELECT query, count(DISTINCT coalesce(request_id, session_id, CAST(timestamp AS VARCHAR))) AS n, "
            "count(DISTINCT user_id) AS u FROM events WHERE query IS NOT NULL AND query <> '' GROUP BY query"
        )
        q = q[q["u"] >= self.min_users]
        qtags: dict[str, set[str]] = {}
        if len(q):
            t = store.query(
                "SELECT e.query, p.category, p.brand, count(*) AS n FROM events e JOIN products p "
                "USING (product_id) WHERE e.query IS NOT NULL AND e.event <> 'impression' "
                "GROUP BY ALL ORDER BY n DESC"
            )
            for query, cat, brand, _ in t.itertuples(index=False):
                tags = qtags.setdefault(query, set())
                if len(tags) < 12:
                    tags.update("c:" + c for c in _cat_keys(cat))
                    if brand:
                        tags.add("b:" + normalize_query(brand))
        for query, n, _u in q.itertuples(index=False):
            add(query, "query", math.log1p(n) + KIND_BONUS["query"], qtags.get(query, set()))

        p = engine.catalog_.products
        active = engine.catalog_.active
        sales = np.nan_to_num(np.asarray(p["sales"].to_numpy(dtype=float, na_value=0.0)))
        brand_sales: dict[str, float] = {}
        cat_sales: dict[str, float] = {}
        for i, (title, brand, cat) in enumerate(zip(p["title"], p["brand"], p["category"], strict=True)):
            if i >= len(active) or not active[i]:
                continue
            s = float(sales[i])
            ckeys = _cat_keys(cat if isinstance(cat, str) else None)
            tags = {"c:" + c for c in ckeys}
            if isinstance(brand, str) and brand:
                tags.add("b:" + normalize_query(brand))
                brand_sales[brand] = brand_sales.get(brand, 0.0) + s
            if isinstance(title, str) and title:
                add(title, "product", 0.5 * math.log1p(s) + KIND_BONUS["product"], tags)
            if isinstance(cat, str) and cat:
                leaf = cat.split(">")[-1].strip()
                cat_sales[(leaf, ckeys[-1] if ckeys else "")] = cat_sales.get((leaf, ckeys[-1] if ckeys else ""), 0.0) + s
        for brand, s in brand_sales.items():
            add(brand, "brand", 0.5 * math.log1p(s) + KIND_BONUS["brand"], {"b:" + normalize_query(brand)})
        for (leaf, ckey), s in cat_sales.items():
            add(leaf, "category", 0.5 * math.log1p(s) + KIND_BONUS["category"], {"c:" + ckey} if ckey else set())

        elist = list(entries.values())
        pairs: list[tuple[str, int]] = []
        for idx, e in enumerate(elist):
            norm = normalize_query(e.text)
            words = norm.split(" ")
            for w in range(len(words)):
                pairs.append((" ".join(words[w:]), idx))
        pairs.sort()
        with self._lock:
            self._entries = elist
            self._keys = [k for k, _ in pairs]
            self._ids = np.fromiter((i for _, i in pairs), dtype=np.int64, count=len(pairs))
            self._base = np.array([e.base for e in elist], dtype=np.float64)
            self._built_at = time.time()
            self._ever_built = True

    def invalidate(self) -> None:
        """Rebuild at the next request (after erasure, a reload or new queries)."""
        self._built_at = 0.0

    def forget(self, user_key: str | None) -> None:
        if user_key:
            self._affinity.pop(user_key, None)
        self.invalidate()

    def note_user(self, user_key: str | None) -> None:
        """A shopper's affinities changed (new events)."""
        if user_key:
            self._affinity.pop(user_key, None)

    def _ensure(self, engine) -> None:
        if not self._ever_built:
            with self._build_lock:
                if not self._ever_built:
                    self.build(engine)
            return
        if time.time() - self._built_at > self.max_age_s and not self._building:
            self._building = True

            def run() -> None:
                try:
                    self.build(engine)
                except Exception:  # noqa: BLE001 - a failed rebuild keeps the old index
                    pass
                finally:
                    self._building = False

            threading.Thread(target=run, name="vitrine-suggest-build", daemon=True).start()

    # -- affinity -------------------------------------------------------------------
    def affinity(self, engine, user_key: str | None) -> dict[str, float]:
        if not user_key:
            return {}
        hit = self._affinity.get(user_key)
        if hit and time.time() - hit[0] < self.max_age_s:
            return hit[1]
        t = engine.store.query(
            "SELECT p.category, p.brand, e.event, count(*) AS n FROM events e JOIN products p "
            "USING (product_id) WHERE e.user_id = ? AND e.event <> 'impression' GROUP BY ALL",
            [user_key],
        )
        w: dict[str, float] = {}
        for cat, brand, ev, n in t.itertuples(index=False):
            x = EVENT_WEIGHT.get(ev, 0.0) * float(n)
            for c in _cat_keys(cat):
                w["c:" + c] = w.get("c:" + c, 0.0) + x
            if brand:
                b = "b:" + normalize_query(brand)
                w[b] = w.get(b, 0.0) + x
        top = max(w.values(), default=0.0)
        w = {k: v / top for k, v in w.items()} if top > 0 else {}
        if len(self._affinity) > 10000:
            self._affinity.clear()
        self._affinity[user_key] = (time.time(), w)
        return w

    # -- query ----------------------------------------------------------------------
    def suggest(self, engine, prefix: str, user_key: str | None = None, limit: int = 8,
                pool: int = 200) -> list[dict]:
        self._ensure(engine)
        norm = normalize_query(prefix)
        if not norm:
            return []
        with self._lock:
            keys, ids, entries, base = self._keys, self._ids, self._entries, self._base
        lo = bisect.bisect_left(keys, norm)
        hi = bisect.bisect_left(keys, norm + "\U0010ffff")
        if hi <= lo:
            return []
        cand = np.unique(ids[lo:hi])
        if len(cand) > pool:
            cand = cand[np.argpartition(-base[cand], pool - 1)[:pool]]
        aff = self.affinity(engine, user_key)
        scored = []
        for i in cand:
            e = entries[int(i)]
            a = max((aff.get(t, 0.0) for t in e.tags), default=0.0) if aff else 0.0
            exact = 0.5 if normalize_query(e.text).startswith(norm) else 0.0
            scored.append((e.base + AFFINITY_WEIGHT * a + exact, e))
        scored.sort(key=lambda x: (-x[0], x[1].text))
        out, seen = [], set()
        for s, e in scored:
            k = normalize_query(e.text)
            if k in seen:
                continue
            seen.add(k)
            out.append({"text": e.text, "kind": e.kind, "score": round(float(s), 4)})
            if len(out) >= limit:
                break
        return out
