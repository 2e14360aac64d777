"""Ranking benchmarks on the synthetic shop (numbers for docs/bench/rank.md).

    .venv/bin/python benchmarks/bench_rank.py [--products 2000 --users 1000 --seed 1 --pages 3000 --requests 200]
        [--seeds 0 1 2] [--neural] [--neural-seconds 300] [--skip-ablations] [--oracle-features]
    .venv/bin/python benchmarks/bench_rank.py --dataset ../shared/data/homedepot [--max-queries 1500]
    .venv/bin/python benchmarks/bench_rank.py --latency-home HOME --dataset ../shared/data/homedepot

Prints one JSON object: the propensity estimate's largest error against
truth/propensities.json, and NDCG@10 against the hidden utilities (gain = the
shopper's true click probability when examined) of engine.search on held-out
search requests (last 20% of the log by time) for: the full ranker (PBM
click model with shopper features, position bias corrected), the same
without shopper features, the naive (propensities = 1) one, the fixed
blend, and with ``--neural`` the neural ranker (``SearchRanker(model="neural")``,
vitrine.rank.neural); and two ceilings on the same candidates: ``oracle_anonymous``
(relevance grade + quality + mean price sensitivity, what no shopper data
can beat on average) and ``oracle_no_pair_noise`` (every hidden preference
known except the unrecoverable per-pair noise). With ``--oracle-features``
the default ranker is also fit with one hidden-truth feature added
(:func:`oracle_feature`: the shopper-specific part of the utility, exact or
with noise, or the anonymous part), which shows how much better features
could give a ranker learning from these logs. Training uses the logs
before the cut and the split=train judgments. All in the same run, on a
light engine (BM25 retriever, item-kNN + popularity personalizer) so that
only the ranker differs. ``fit`` reports each timed ranker's training
seconds and peak resident memory above the level before its fit (sampled
every 0.1 s, so the process's own peak, torch and LightGBM included).
With ``--seeds``, the full and the neural ranker are fit once per ranker
seed: ``ndcg@10`` is their mean over seeds, ``per_seed`` each one, and
``neural_minus_full`` the paired difference over requests (each request
averaged over seeds) with a normal 95% interval.

``--latency-home HOME --dataset DIR`` times in-process ``Engine.search`` on a
fitted home for DIR's split=test queries, with the first 5 and the first 1
of a LambdaMART home's averaged boosters (the serving cost of
``VITRINE_RANKER_MODELS``).

``--dataset DIR`` instead fits the LightGBM and the neural ranker on a
dataset's split=train judgments and compares them (and BM25) on the
split=test queries' judged products (rerank), with one shared retriever.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
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
        top = np.sort(g)[::-1][:k]
        idcg = float((top * disc[: len(top)]).sum())
        p = truth.product_codes(pids)
        uc = np.full(len(p), truth.user_codes(uid))
        grade = relevance(m.leaf[p], m.mid[p], m.color[p], m.brand[p], m.material[p], m.style[p], truth.intent(q))
        anon = W_REL * grade + W_QUALITY * m.quality[p] - mean_sens * m.log_rel_price[p]
        for name, s in (("oracle_anonymous", anon), ("oracle_no_pair_noise", u - W_PAIR * _pair_noise(uc, p, m.seed))):
            o = np.lexsort((-np.asarray(c.scores), -s))[:k]
            res[name].append(float((g[o] * disc[: len(o)]).sum()) / idcg)
    return {n: float(np.mean(v)) for n, v in res.items()}


@contextmanager
def oracle_feature(engine, folder, part: str, noise: float = 0.0, seed: int = 0):
    """Add the hidden truth as one more ranker feature (``oracle``), in training and serving alike.

    ``part``: "shopper" (the shopper-specific part of the utility: leaf, brand,
    colour and style affinities, and price sensitivity around its mean, without
    drift or per-pair noise), "shopper-leaf" (the leaf affinity alone: what
    browsing reveals best), "shopper-rest" (the shopper part without it) or
    "anonymous" (relevance grade, quality, mean price sensitivity: the
    ``oracle_anonymous`` ranking). ``noise``: standard
    deviation of Gaussian noise added to it, a stand-in for an imperfect
    estimate. A diagnostic of how far better features could take the ranker,
    never a result.
    """
    import vitrine.rank.ranker as ranker_module
    from vitrine.data.store import pseudonymize
    from vitrine.data.synth import W_QUALITY, W_REL, _model_from_truth, relevance

    truth = load_truth(folder)
    m = _model_from_truth(truth)
    mean_sens = float(np.mean(m.price_sens))
    users = {pseudonymize(str(u), engine.settings.secret): u for u in truth.users["user_id"]}
    rng = np.random.default_rng(seed)
    real = ranker_module.assemble

    def assemble(eng, query, cands, personal=None, user_key=None, **kw):
        f = real(eng, query, cands, personal, user_key=user_key, **kw)
        p = truth.product_codes(np.asarray(eng.catalog_.ids)[np.asarray(cands.rows)])
        if part == "anonymous":
            grade = relevance(m.leaf[p], m.mid[p], m.color[p], m.brand[p], m.material[p], m.style[p],
                              truth.intent(query)) if query else 0.0
            v = W_REL * grade + W_QUALITY * m.quality[p] - mean_sens * m.log_rel_price[p]
        elif user_key in users:
            u = truth.user_codes(users[user_key])
            leaf = m.cat[u, m.leaf[p]]
            rest = (m.brand_aff[u, m.brand[p]] + m.color_aff[u, m.color[p]] + m.style_aff[u, m.style[p]]
                    - (m.price_sens[u] - mean_sens) * m.log_rel_price[p])
            v = {"shopper-leaf": leaf, "shopper-rest": rest}.get(part, leaf + rest)
        else:
            v = np.full(len(p), np.nan)
        f["oracle"] = (v + noise * rng.standard_normal(len(p))).astype(np.float32)
        return f

    ranker_module.assemble = assemble
    try:
        yield
    finally:
        ranker_module.assemble = real


def per_request_ndcg(engine, folder, req, k: int = 10, depth: int = 100) -> np.ndarray:
    """Per request, what :func:`simulated_search_ndcg` averages (truth loaded once)."""
    from vitrine.data.synth import utility

    truth = load_truth(folder)
    cm = truth.params["click_model"]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = []
    for uid, q, ts in zip(req["user_id"], req["query"], req["timestamp"], strict=True):
        cands = engine.retrieve(q, k=depth)
        if not len(cands.rows):
            continue
        pids = engine.catalog_.ids[cands.rows]
        u = utility(truth, uid, pids, query=q, time=np.datetime64(ts, "ms"))
        gain = 1.0 / (1.0 + np.exp(-cm["click_slope"] * (u - cm["click_offset"])))
        g = dict(zip(pids, gain, strict=True))
        got = np.asarray([g.get(p, 0.0) for p in engine.search(q, user_id=uid, k=k, depth=depth).item_ids])
        ideal = np.sort(gain)[::-1][:k]
        idcg = float((ideal * disc[: len(ideal)]).sum())
        if idcg > 0:
            out.append(float((got * disc[: len(got)]).sum()) / idcg)
    return np.asarray(out)


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def timed_fit(ranker, engine, train) -> tuple[SearchRanker, dict]:
    """Fit ``ranker``; training seconds and peak RSS above the level before the fit."""
    base, peak, stop = _rss(), [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.1)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    t0 = time.time()
    try:
        ranker.fit(engine, train)
    finally:
        stop.set()
        th.join()
    return ranker, {"seconds": round(time.time() - t0, 1), "peak_rss_above_start_mb": round((peak[0] - base) / 2**20)}


def judged_rerank(path: Path, pages: int, max_queries: int, neural_seconds: float, seed: int) -> dict:
    """LightGBM and neural ranker side by side on a dataset with judgments
    (rerank protocol: each split=test query's judged products), one retriever
    (BM25 + dense text from the on-disk embedding cache, no images) for both."""
    from vitrine.data.catalog import Catalog
    from vitrine.engine import Engine
    from vitrine.evaluate.metrics import evaluate_rankings
    from vitrine.evaluate.search import split_judgments
    from vitrine.personal import Personalizer
    from vitrine.retrieve import Retriever

    ds = load_dataset(path)
    train_j, test_j = split_judgments(ds.judgments)
    train = Dataset(products=ds.products, events=ds.events, reviews=ds.reviews, judgments=train_j, root=ds.root,
                    meta=ds.meta)
    e = Engine(home=Path(tempfile.mkdtemp(prefix="bench_rank-home-")))
    t0 = time.time()
    e.catalog_ = Catalog(ds.products, root=ds.root)
    e.retriever_ = Retriever(image_model="none").fit(e.catalog_)
    e.personal_ = Personalizer(sources=("popularity",), tune=False).fit(None, e.catalog_)
    out: dict = {"retriever_seconds": round(time.time() - t0, 1), "fit": {}, "ndcg@10": {}}
    truth = {q: dict(zip(g["product_id"], g["grade"], strict=True)) for q, g in test_j.groupby("query")}
    ids = e.catalog_.ids
    base = {q: e.catalog_.indices(list(t)) for q, t in truth.items()}
    runs = {"bm25": {}}
    for q, rows in base.items():
        runs["bm25"][q] = list(ids[rows[np.argsort(-e.retriever_.score_rows(q, rows).sources["lexical"],
                                                   kind="stable")]])
    for name, r in (("lightgbm_pbm", SearchRanker(max_log_pages=pages, max_queries=max_queries, seed=seed)),
                    ("neural", SearchRanker(model="neural", max_log_pages=pages, max_queries=max_queries,
                                            seed=seed, neural_seconds=neural_seconds))):
        e.ranker_, out["fit"][name] = timed_fit(r, e, train)
        runs[name] = {q: list(ids[rows[np.argsort(-e.score(q, rows), kind="stable")]]) for q, rows in base.items()}
        if name == "neural" and e.ranker_.model_ is not None:
            out["neural"] = {"epochs": e.ranker_.model_.history_, "attention_by_group": e.ranker_.model_.importance()}
    for name, run in runs.items():
        out["ndcg@10"][name] = evaluate_rankings(truth, run, k=10)["ndcg@10"]
    out["queries"] = {"train": int(train_j["query"].nunique()), "test": len(truth), "max_queries": max_queries}
    return out


def booster_latency(home: Path, folder: Path, rounds: int = 2, n: int = 300) -> dict:
    """ms per ``Engine.search`` (k=10) with the first 5 and the first 1 averaged boosters."""
    from vitrine.engine import Engine

    e = Engine.load(home)
    j = load_dataset(folder, check_images=False).judgments
    qs = j.loc[j["split"] == "test", "query"].drop_duplicates().tolist()[:n] if "split" in j else []
    qs = qs or j["query"].drop_duplicates().tolist()[:n]
    members = list(e.ranker_.model_._members())
    out: dict = {"boosters_in_home": len(members), "queries": len(qs)}
    for q in qs:  # encodes each query once: the timed passes all hit the query cache
        e.search(q, k=10)
    for _ in range(rounds):  # interleaved, so drift in machine load hits both
        for k in sorted({min(5, len(members)), 1}, reverse=True):
            e.ranker_.model_.boosters_ = members[:k]
            ts = []
            for q in qs:
                t = time.perf_counter()
                e.search(q, k=10)
                ts.append((time.perf_counter() - t) * 1000)
            out.setdefault(f"{k}_boosters", []).append(
                {"mean_ms": float(np.mean(ts)), "p50_ms": float(np.percentile(ts, 50)),
                 "p99_ms": float(np.percentile(ts, 99))})
    return out


def few_queries(dataset: Path, counts: list[int], protocols: list[str], seed: int) -> dict:
    """The contract's search evaluation with the training judgments cut to a random ``n`` queries,
    with the ranker's cross-validated check (default) and without it (LambdaMART alone).

    Each cut folder links the products (and images) and keeps every test query.
    """
    from vitrine.config import get_settings
    from vitrine.engine import Engine
    from vitrine.evaluate.search import run_search

    src = dataset.resolve()
    judg = load_dataset(src).judgments
    train = judg[judg["split"] == "train"]
    queries = train["query"].unique()
    tmp = Path(tempfile.mkdtemp(prefix="bench_rank-few-"))
    out: dict = {}
    for n in counts:
        folder = tmp / f"q{n}"
        folder.mkdir()
        keep = np.random.default_rng(seed).choice(queries, min(n, len(queries)), replace=False)
        pd.concat([train[train["query"].isin(keep)], judg[judg["split"] != "train"]]).to_parquet(
            folder / "judgments.parquet")
        for f in src.iterdir():
            if not f.name.startswith("judgments."):
                (folder / f.name).symlink_to(f)
        for check in (True, False):
            settings = get_settings().model_copy(update={"ranker_check_queries": 1000 if check else 0})
            for protocol in protocols:
                rep = run_search(folder, protocol=protocol, progress=False,
                                 engine=Engine(settings=settings, home=tmp / f"home-{n}-{check}"))
                out[f"{n}_queries/{'check' if check else 'lambdamart'}/{protocol}"] = {
                    "ndcg@10": rep.metrics["ndcg@10"],
                    "baselines": {b: m["ndcg@10"] for b, m in rep.baselines.items()},
                    "ranker_check": rep.extra.get("ranker_check"), "seconds": rep.seconds}
                print(json.dumps({k: v for k, v in out.items() if k.startswith(f"{n}_")}), file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=2000)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--pages", type=int, default=20000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="ranker seeds (each ranker fit once per seed)")
    ap.add_argument("--neural", action="store_true", help="also train and score the neural ranker")
    ap.add_argument("--neural-seconds", type=float, default=300.0, help="neural ranker training budget")
    ap.add_argument("--skip-ablations", action="store_true",
                    help="only the default ranker (and --neural): no no-shopper/naive/lambdarank/blend runs")
    ap.add_argument("--oracle-features", action="store_true",
                    help="also fit the default ranker with a hidden-truth feature added (diagnostic ceilings)")
    ap.add_argument("--dataset", type=Path, default=None,
                    help="instead of the synthetic shop: a dataset folder with judgments (rerank protocol)")
    ap.add_argument("--max-queries", type=int, default=6000, help="judged training queries (--dataset)")
    ap.add_argument("--few-queries", type=int, nargs="+", default=None,
                    help="with --dataset: cut the training judgments to this many random queries and run the "
                         "search contract with and without the ranker's check (docs/bench/rank.md)")
    ap.add_argument("--protocols", nargs="+", default=["rerank", "retrieve"], help="with --few-queries")
    ap.add_argument("--latency-home", type=Path, default=None,
                    help="with --dataset: time searches on this fitted LambdaMART home, 5 vs 1 boosters")
    a = ap.parse_args()
    if a.latency_home is not None:
        print(json.dumps(booster_latency(a.latency_home, a.dataset)))
        return
    if a.dataset is not None and a.few_queries:
        t0 = time.time()
        out = few_queries(a.dataset, a.few_queries, a.protocols, a.seeds[0])
        out["seconds"] = round(time.time() - t0, 1)
        print(json.dumps(out))
        return
    if a.dataset is not None:
        t0 = time.time()
        out = judged_rerank(a.dataset, a.pages, a.max_queries, a.neural_seconds, a.seeds[0])
        out["seconds"] = round(time.time() - t0, 1)
        out["args"] = {k: str(v) for k, v in vars(a).items()}
        print(json.dumps(out))
        return
    if a.neural:
        import vitrine.rank.neural  # noqa: F401 - import torch and the model before the long LightGBM fit
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
    e = lite_engine(train, tmp / "home", SearchRanker(model="blend"))
    out: dict = {"propensity_max_abs_error": float(np.nanmax(np.abs(est - truth.propensities))),
                 "ndcg@10": {}, "fit": {}, "per_seed": {}}
    folder = tmp / "shop"
    per: dict[str, list[np.ndarray]] = {"full": [], "neural": []}
    for i, seed in enumerate(a.seeds):
        kinds = [("full", SearchRanker(max_log_pages=a.pages, seed=seed))]
        if a.neural:
            kinds.append(("neural", SearchRanker(model="neural", max_log_pages=a.pages, seed=seed,
                                                 neural_seconds=a.neural_seconds)))
        for name, r in kinds:
            e.ranker_, out["fit"][f"{name}_seed{seed}"] = timed_fit(r, e, train)
            per[name].append(per_request_ndcg(e, folder, req))
            out["per_seed"][f"{name}_seed{seed}"] = float(per[name][-1].mean())
            if i == 0:
                out["ndcg@10"][f"{name}_anonymous_request"] = simulated_search_ndcg(e, folder, req, personalize=False)
                if name == "full":
                    out["ndcg@10"].update(oracles(e, folder, req))
                    # The helper and vitrine.evaluate agree (same gains, same candidates).
                    out["check_simulated_search_ndcg"] = simulated_search_ndcg(e, folder, req)
                else:
                    m = e.ranker_.model_
                    out["neural"] = {"epochs": m.history_, "attention_by_group": m.importance(),
                                     "parameters": int(sum(p.numel() for p in m.net_.parameters()))}
    for name, v in per.items():
        if v:
            out["ndcg@10"][name] = float(np.mean(v))
    if a.neural:
        # Paired over requests (each request's NDCG averaged over the seeds).
        d = np.mean(per["neural"], 0) - np.mean(per["full"], 0)
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
        out["neural_minus_full"] = {
            "mean": float(d.mean()), "ci95": [float(d.mean() - half), float(d.mean() + half)],
            "requests_better": int((d > 1e-12).sum()), "requests_worse": int((d < -1e-12).sum())}
    ablations = [("no_shopper_features", SearchRanker(max_log_pages=a.pages, personal_features=False)),
                 ("naive_uncorrected", SearchRanker(max_log_pages=a.pages, debias=False)),
                 ("lambdamart_ipw", SearchRanker(max_log_pages=a.pages, objective="lambdarank")),
                 ("blend", SearchRanker(model="blend"))]
    for name, r in [] if a.skip_ablations else ablations:
        e.ranker_ = r.fit(e, train)
        out["ndcg@10"][name] = simulated_search_ndcg(e, tmp / "shop", req)
    oracles_fit = [("shopper", 0.0), ("shopper", 0.5), ("shopper", 1.0), ("shopper-leaf", 0.0),
                   ("shopper-rest", 0.0), ("anonymous", 0.0)]
    for part, noise in oracles_fit if a.oracle_features else []:
        with oracle_feature(e, folder, part, noise):
            e.ranker_ = SearchRanker(max_log_pages=a.pages, seed=a.seeds[0]).fit(e, train)
            out["ndcg@10"][f"with_oracle_{part}_feature" + (f"_noise{noise}" if noise else "")] = (
                simulated_search_ndcg(e, folder, req))
    out["seconds"] = round(time.time() - t0, 1)
    out["args"] = vars(a)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
