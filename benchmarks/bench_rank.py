"""Ranking benchmarks on the synthetic shop (numbers for docs/bench/rank.md).

    .venv/bin/python benchmarks/bench_rank.py [--products 2000 --users 1000 --seed 1 --pages 3000 --requests 200]

Prints one JSON object: the propensity estimate's largest error against
truth/propensities.json, and NDCG@10 against the hidden utilities (gain = the
shopper's true click probability when examined) of engine.search on held-out
search requests (last 20% of the log by time) for: the full ranker (PBM
click model with shopper features, position bias corrected), the same
without shopper features, the naive (propensities = 1) one, the fixed
blend; and two ceilings on the same candidates: ``oracle_anonymous``
(relevance grade + quality + mean price sensitivity, what no shopper data
can beat on average) and ``oracle_no_pair_noise`` (every hidden preference
known except the unrecoverable per-pair noise). Training uses the logs
before the cut and the split=train judgments. All in the same run, on a
light engine (BM25 retriever, item-kNN + popularity personalizer) so that
only the ranker differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "rank"))

from _lite import lite_engine  # noqa: E402

from vitrine.data.dataset import Dataset, load_dataset  # noqa: E402
from vitrine.data.synth import generate, load_truth  # noqa: E402
from vitrine.evaluate.counterfactual import simulated_search_ndcg  # noqa: E402
from vitrine.rank import SearchRanker  # noqa: E402
from vitrine.rank.propensity import estimate_propensities, impressions_from_events  # noqa: E402


def oracles(engine, folder, req, k: int = 10, depth: int = 100) -> dict[str, float]:
    """NDCG@k of two hidden-truth ceilings over the same retrieved candidates."""
    from vitrine.data.synth import W_PAIR, W_QUALITY, W_REL, _model_from_truth, _pair_noise, relevance, utility

    truth = load_truth(folder)
    cm = truth.params["click_model"]
    m = _model_from_truth(truth)
    mean_sens = float(np.mean(m.price_sens))
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    res: dict[str, list[float]] = {"oracle_anonymous": [], "oracle_no_pair_noise": []}
    for uid, q, ts in zip(req["user_id"], req["query"], req["timestamp"], strict=True):
        c = engine.retrieve(q, k=depth)
        pids = engine.catalog_.ids[c.rows]
        u = utility(truth, uid, pids, query=q, time=np.datetime64(ts, "ms"))
        g = 1.0 / (1.0 + np.exp(-cm["click_slope"] * (u - cm["click_offset"])))
        idcg = float((np.sort(g)[::-1][:k] * disc).sum())
        p = truth.product_codes(pids)
        uc = np.full(len(p), truth.user_codes(uid))
        grade = relevance(m.leaf[p], m.mid[p], m.color[p], m.brand[p], m.material[p], m.style[p], truth.intent(q))
        anon = W_REL * grade + W_QUALITY * m.quality[p] - mean_sens * m.log_rel_price[p]
        for name, s in (("oracle_anonymous", anon), ("oracle_no_pair_noise", u - W_PAIR * _pair_noise(uc, p, m.seed))):
            o = np.lexsort((-np.asarray(c.scores), -s))[:k]
            res[name].append(float((g[o] * disc[: len(o)]).sum()) / idcg)
    return {n: float(np.mean(v)) for n, v in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="bench_rank-"))
    generate(tmp / "shop", products=a.products, users=a.users, seed=a.seed, images=False)
    ds = load_dataset(tmp / "shop")
    truth = load_truth(tmp / "shop")
    est = estimate_propensities(impressions_from_events(ds.events), max_position=20)
    cut = ds.events["timestamp"].quantile(0.8)
    train = Dataset(products=ds.products, events=ds.events[ds.events["timestamp"] < cut], reviews=ds.reviews,
                    judgments=ds.judgments[ds.judgments["split"] == "train"], root=ds.root, meta=ds.meta)
    req = pd.read_parquet(tmp / "shop" / "truth" / "requests.parquet")
    req = req[(req["timestamp"] >= cut) & req["query"].notna()].sample(a.requests, random_state=0)
    e = lite_engine(train, tmp / "home", SearchRanker(max_log_pages=a.pages))
    out = {"propensity_max_abs_error": float(np.nanmax(np.abs(est - truth.propensities))),
           "ndcg@10": {"full": simulated_search_ndcg(e, tmp / "shop", req)}}
    out["ndcg@10"]["full_anonymous_request"] = simulated_search_ndcg(e, tmp / "shop", req, personalize=False)
    out["ndcg@10"].update(oracles(e, tmp / "shop", req))
    for name, r in [("no_shopper_features", SearchRanker(max_log_pages=a.pages, personal_features=False)),
                    ("naive_uncorrected", SearchRanker(max_log_pages=a.pages, debias=False)),
                    ("lambdamart_ipw", SearchRanker(max_log_pages=a.pages, objective="lambdarank")),
                    ("blend", SearchRanker(model="blend"))]:
        e.ranker_ = r.fit(e, train)
        out["ndcg@10"][name] = simulated_search_ndcg(e, tmp / "shop", req)
    out["seconds"] = round(time.time() - t0, 1)
    out["args"] = vars(a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
