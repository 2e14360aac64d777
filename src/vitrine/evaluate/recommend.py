"""`vitrine evaluate recommend`: leave-last-out recommendation evaluation.

Each user's last event (by timestamp; the last click, cart or purchase when
the log also has impressions) is held out; models train on what came before
and rank the whole catalog with the user's seen products excluded, or, with
``candidates``, only the user's candidate list plus the held-out product.
Baselines run in the same process on the same split.

With ``candidates`` the engine ranks each list through
``Personalizer.score_candidates`` (exact per-candidate source scores, the
blend tuned at fit time on a sampled-candidate validation objective; the test
holdout is never seen by tuning). Remaining exact ties, which single-source
baselines have plenty of, are broken by a fixed random order: the held-out
product never wins a tie by its position in the list.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from vitrine.data.dataset import Dataset, load_dataset
from vitrine.engine import Engine
from vitrine.evaluate.common import EvalReport, evaluation_engine, input_warnings
from vitrine.evaluate.metrics import evaluate_rankings
from vitrine.results import top_k

COLD_USER_EVENTS = 3  # users with fewer training events count as cold
COLD_PRODUCT_EVENTS = 5  # held-out products with fewer training events count as cold


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (0 where unknown)."""
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    except Exception:  # pragma: no cover - platform without resource
        return 0.0


def interactions(events: pd.DataFrame) -> pd.DataFrame:
    """The events a shopper chose (clicks, carts, purchases); all events when the log has only impressions."""
    chosen = events["event"] != "impression"
    return events[chosen] if chosen.any() else events


def leave_last_out(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off each user's last interaction (ties broken by file order).

    Impressions are what an earlier ranker showed, not what the shopper
    chose, so the held-out event is the last click, cart or purchase. The
    user's events from it on leave training: later ones are the future, and
    the impressions of the page it happened on (same ``request_id``) would
    tell a model what was on screen. So do the steps that led straight to
    it (a click and a cart of the same product just before its purchase).
    On a log of purchases of distinct products this is plain leave-last-out.
    """
    ev = events.reset_index(drop=True)
    ev = ev.assign(_order=np.arange(len(ev))).sort_values(["user_id", "timestamp", "_order"], kind="stable")
    ev["_order"] = np.arange(len(ev))
    chosen = interactions(ev)
    test = chosen[~chosen["user_id"].duplicated(keep="last")]
    cut = ev["user_id"].map(dict(zip(test["user_id"], test["_order"], strict=True)))
    keep = cut.isna().to_numpy() | (ev["_order"] < cut).to_numpy()
    keep &= ~ev["_order"].isin(_funnel(chosen, test)).to_numpy()
    if "request_id" in ev:
        page = dict(zip(test["user_id"], test["request_id"], strict=True))
        same = ev["request_id"].notna() & (ev["request_id"] == ev["user_id"].map(page))
        keep &= ~same.to_numpy()
    train = ev[keep].drop(columns="_order").sort_values("timestamp", kind="stable")
    return train, test.drop(columns="_order")


def _funnel(chosen: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """``_order`` of the steps that led to each held-out event: the same
    product chosen in the same session, or just before it (no session ids).

    Left in training, a click or cart of the product bought next would make
    it "seen", and a seen product is never ranked.
    """
    target = chosen["user_id"].map(dict(zip(test["user_id"], test["product_id"], strict=True)))
    same = chosen["product_id"] == target
    before = chosen[~same].groupby("user_id")["_order"].max()
    steps = same & (chosen["_order"] > chosen["user_id"].map(before).fillna(-1))
    if "session_id" in chosen:
        visit = chosen["user_id"].map(dict(zip(test["user_id"], test["session_id"], strict=True)))
        steps |= same & chosen["session_id"].notna() & (chosen["session_id"] == visit)
    return chosen.loc[steps, "_order"].to_numpy()


def _drawn(lists: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    """The candidate rows fit may read to learn how the lists were drawn: a file that also names
    a shopper's held-out product would otherwise teach it that products are drawn like purchases."""
    held = set(zip(test["raw_user"], test["product_id"], strict=True))
    keep = [pair not in held for pair in zip(lists["user_id"], lists["product_id"], strict=True)]
    return lists[np.asarray(keep, dtype=bool)]


# A scorer maps (user keys, engine) -> function(user key) -> scores over all catalog rows.
Scorer = Callable[[str], np.ndarray]


def popularity_scorer(engine: Engine, train: pd.DataFrame) -> Scorer:
    rows = engine.catalog_.indices(train["product_id"], missing="mark")
    pop = np.bincount(rows[rows >= 0], minlength=len(engine.catalog_)).astype(np.float64)
    return lambda user: pop


def baseline_scorers(engine: Engine, train: pd.DataFrame) -> dict[str, Scorer]:
    out = {"popularity": popularity_scorer(engine, train)}
    extra = getattr(engine.personal_, "baseline_scorers", None)
    if extra is not None:
        out.update(extra(train))
    return out


def run_recommend(
    path: str | Path, candidates: bool = False, k: int = 10, progress: bool = True,
    engine: Engine | None = None, max_users: int | None = None,
) -> EvalReport:
    t0 = time.time()
    ds = load_dataset(path, check_images=False)
    if ds.events is None or not len(ds.events):
        raise ValueError(f"{path}: recommendation evaluation needs events")
    engine = evaluation_engine(engine, k)
    secret = engine.settings.secret
    from vitrine.data.store import pseudonymize_series

    events = ds.events.copy()
    events["raw_user"] = events["user_id"]
    events["user_id"] = pseudonymize_series(events["user_id"], secret)
    train, test = leave_last_out(events)
    held_out = test  # every shopper's, before --max-users keeps some
    if candidates:
        if ds.candidates is None:
            raise ValueError(f"{path}: --candidates needs candidates.parquet/csv/jsonl")
        cand = ds.candidates.groupby("user_id")["product_id"].apply(list).to_dict()
        test = test[test["raw_user"].isin(cand)]
    if max_users is not None and len(test) > max_users:
        test = test.iloc[:max_users]
    fit_ds = Dataset(products=ds.products, events=train.drop(columns="raw_user"), reviews=ds.reviews,
                     candidates=_drawn(ds.candidates, held_out) if candidates else None, root=ds.root, meta=ds.meta,
                     pseudonymized=True)
    engine.fit(fit_ds, progress=progress)
    cat = engine.catalog_
    ids = cat.ids
    t_base = time.time()
    scorers = {"vitrine": engine.personal_.score_all, **baseline_scorers(engine, train)}
    # scorers of a given candidate list (user key, rows) -> scores, used instead of the full-catalog ones
    pool_scorers = {}
    if callable(getattr(engine.personal_, "score_candidates", None)):
        pool_scorers["vitrine"] = engine.personal_.score_candidates
    t_base = time.time() - t_base
    chosen = interactions(train)  # a product only shown to the shopper is not "seen"
    seen = chosen.groupby("user_id")["product_id"].apply(lambda s: cat.indices(s.unique())).to_dict()
    n_train = chosen.groupby("user_id").size().to_dict()
    truth, runs = {}, {name: {} for name in scorers}
    tie = np.random.default_rng(0).permutation(len(cat))
    cold_users = []
    for ukey, raw, pid in tqdm(
        zip(test["user_id"], test["raw_user"], test["product_id"], strict=True),
        total=len(test), desc="recommend", disable=not progress,
    ):
        truth[ukey] = {pid: 1.0}
        if n_train.get(ukey, 0) < COLD_USER_EVENTS:
            cold_users.append(ukey)
        pool = cat.indices(list(dict.fromkeys([*cand[raw], pid]))) if candidates else None
        for name, fn in scorers.items():
            if pool is not None:
                if name in pool_scorers:
                    sub = np.asarray(pool_scorers[name](ukey, pool), dtype=np.float64)
                else:
                    sub = np.asarray(fn(ukey), dtype=np.float64)[pool]
                order = np.lexsort((tie[pool], -sub))[:k]  # ties broken by a fixed random order
                runs[name][ukey] = list(ids[pool[order]])
            else:
                s = np.asarray(fn(ukey), dtype=np.float64).copy()
                s[seen.get(ukey, [])] = -np.inf
                runs[name][ukey] = list(ids[top_k(s, k)])
    results = {n: evaluate_rankings(truth, r, k=k) for n, r in runs.items()}
    from vitrine.evaluate.metrics import coverage

    for n, r in runs.items():
        results[n][f"coverage@{k}"] = coverage(r.values(), len(cat), k)
    cold_truth = {u: truth[u] for u in cold_users}
    item_counts = chosen["product_id"].value_counts().to_dict()
    cold_items = {u: t for u, t in truth.items() if item_counts.get(next(iter(t)), 0) < COLD_PRODUCT_EVENTS}
    extra = {"users": len(truth), "cold_users": len(cold_users), "cold_products": len(cold_items),
             **input_warnings(ds)}
    if cold_truth:
        extra["cold_user_metrics"] = {n: evaluate_rankings(cold_truth, runs[n], k=k) for n in runs}
    if cold_items:
        extra["cold_product_metrics"] = {n: evaluate_rankings(cold_items, runs[n], k=k) for n in runs}
    timings = getattr(engine.personal_, "timings_", None)
    if timings:
        extra["fit_seconds"] = {n: round(float(v), 2) for n, v in timings.items()}
    if getattr(engine.personal_, "weights_", None):
        extra["blend_weights"] = {n: round(float(v), 3) for n, v in engine.personal_.weights_.items()}
    if candidates and getattr(engine.personal_, "candidate_weights_", None):
        extra["candidate_blend_weights"] = {n: round(float(v), 3)
                                            for n, v in engine.personal_.candidate_weights_.items()}
    if getattr(engine.personal_, "tuning_", None):
        extra["tuning"] = {n: (round(float(v), 4) if isinstance(v, float) else v)
                           for n, v in engine.personal_.tuning_.items()}
    extra["baseline_fit_seconds"] = round(t_base, 2)
    extra["peak_rss_mb"] = _peak_rss_mb()
    return EvalReport(
        dataset=ds.name, task="recommend", protocol="candidates" if candidates else "full", k=k,
        metrics=results.pop("vitrine"), baselines=results, seconds=round(time.time() - t0, 2), extra=extra,
    )
