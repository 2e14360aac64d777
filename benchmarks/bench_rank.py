"""Ranking benchmarks on the synthetic shop (numbers for docs/bench/rank.md).

    .venv/bin/python benchmarks/bench_rank.py [--products 2000 --users 1000 --seed 1 --pages 3000 --requests 200]

Prints one JSON object: the propensity estimate's largest error against
truth/propensities.json, and NDCG@10 against the hidden utilities (gain = the
shopper's true click probability when examined) of engine.search on held-out
search requests (last 20% of the log by time) for: the full ranker
(shopper features + IPW), the same without shopper features, the naive
(unweighted clicks) ranker and the fixed blend. All in the same run, on a
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pages", type=int, default=3000)
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
                    root=ds.root, meta=ds.meta)
    req = pd.read_parquet(tmp / "shop" / "truth" / "requests.parquet")
    req = req[(req["timestamp"] >= cut) & req["query"].notna()].sample(a.requests, random_state=0)
    e = lite_engine(train, tmp / "home", SearchRanker(max_log_pages=a.pages))
    out = {"propensity_max_abs_error": float(np.nanmax(np.abs(est - truth.propensities))),
           "ndcg@10": {"full": simulated_search_ndcg(e, tmp / "shop", req)}}
    for name, r in [("no_shopper_features", SearchRanker(max_log_pages=a.pages, personal_features=False)),
                    ("naive_no_ipw", SearchRanker(max_log_pages=a.pages, debias=False)),
                    ("blend", SearchRanker(model="blend"))]:
        e.ranker_ = r.fit(e, train)
        out["ndcg@10"][name] = simulated_search_ndcg(e, tmp / "shop", req)
    out["seconds"] = round(time.time() - t0, 1)
    out["args"] = vars(a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
