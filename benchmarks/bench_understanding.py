"""Product-understanding benchmark: encode throughput, index build time, query latency.

Usage::

    python benchmarks/bench_understanding.py [--sizes 10000 100000 1000000] [--threads 2]
        [--vectors random|clustered] [--kinds flat hnsw] [--skip-encoders] [--skip-index]
        [--skip-bm25] [--json]

* text encode: products/s of the dense text encoder (bundled MiniLM) on
  synthetic-shop titles+descriptions, cold in float32 and in bfloat16 (with
  the smallest cosine between the two), then cached.
* image encode: products/s of the image tower's ``encode_images`` at 64 px
  (inference; training is bounded separately by ``tower_seconds``), and tower
  training images/s.
* index: build time, query latency p50/p99 (ms, one query at a time),
  recall@10 against exact search and peak RSS for exact (flat) and HNSW
  FAISS indexes over unit vectors of dimension 384 at each size: random
  (no structure: HNSW's worst case) or clustered by topic like real
  embeddings (``--vectors clustered``); plus BM25 build time and scoring
  latency over random word documents.

Encode throughput is measured on real synthetic products.

Fusion comparison (``--fusion DATASET``): fits one retriever (text, image,
BM25) on the dataset, then each item-fusion method on top of the same
modality vectors (so the image tower is shared and the methods differ only
in the fusion), and ranks the whole catalog for every split=test query:
``item`` is the fused item vector alone, ``retriever`` the retriever's own
top 10 (RRF of its sources, with the ``item`` source for learned methods),
beside BM25 and dense text from the same fit. ``--judgments`` also trains
the fusion on the split=train judgments (what ``Engine.fit`` would do if it
passed them to ``Retriever.fit``), as does a method name ending in ``+j``
(``--methods average concat concat+j`` compares both in one fit); reviews
are always passed when present::

    python benchmarks/bench_understanding.py --fusion ../shared/data/homedepot --judgments --json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _pct(x: list[float]) -> dict[str, float]:
    a = np.asarray(x) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def bench_encoders(n_text: int, n_img: int) -> dict:
    import warnings

    from vitrine.data.catalog import Catalog
    from vitrine.data.dataset import load_dataset
    from vitrine.data.synth import generate
    from vitrine.features.image import ImageTower, load_images
    from vitrine.features.text import TextEncoder
    from vitrine.retrieve import dense_text

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        shop = Path(tmp) / "shop"
        generate(shop, products=max(n_text, n_img), users=20, seed=0, sessions_per_user=1.0, judged_queries=10)
        ds = load_dataset(shop)
        cat = Catalog(ds.products, root=ds.root)
        texts = [dense_text(cat, i) for i in range(n_text)]
        enc = TextEncoder(cache_dir=Path(tmp) / "cache")
        enc.encode(texts[:64])  # load the model
        # Both precisions cold, side by side (VITRINE_TEXT_PRECISION; auto is bf16 where the CPU has it).
        by_precision, cold = {}, {}
        for precision in ("fp32", "bf16"):
            enc = TextEncoder(cache_dir=Path(tmp) / f"cache-{precision}", precision=precision)
            t0 = time.perf_counter()
            by_precision[precision] = enc.encode(texts)
            cold[precision] = time.perf_counter() - t0
            out[f"text_encode_{precision}_products_per_s"] = round(n_text / cold[precision], 1)
        vecs = by_precision["fp32"]
        out["text_bf16_speedup"] = round(cold["fp32"] / cold["bf16"], 2)
        out["text_bf16_min_cosine"] = round(float((vecs * by_precision["bf16"]).sum(axis=1).min()), 6)
        t0 = time.perf_counter()
        TextEncoder(cache_dir=Path(tmp) / "cache-fp32").encode(texts)
        warm = time.perf_counter() - t0
        out["text_encode_cached_products_per_s"] = round(n_text / warm, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            imgs, ok = load_images([cat.image_path(i) for i in range(n_img)], size=64)
            out["image_load_products_per_s"] = round(n_img / (time.perf_counter() - t0), 1)
        tv = enc.encode([dense_text(cat, i) for i in range(n_img)])
        tower = ImageTower(max_seconds=20).fit(imgs, tv)
        trained = sum(1 for _ in tower.history_)
        out["tower_train_seconds"] = round(tower.seconds_, 1)
        out["tower_train_epochs"] = trained
        t0 = time.perf_counter()
        tower.encode_images(imgs)
        out["image_encode_products_per_s"] = round(n_img / (time.perf_counter() - t0), 1)
        out["text_dim"] = int(vecs.shape[1])
    return out


def index_vectors(n: int, dim: int, queries: int, vectors: str, rng: np.random.Generator):
    """Unit rows and queries: ``random`` (no structure, HNSW's worst case) or
    ``clustered`` (one of n/500 topics plus noise of the topic's size, so that
    members of a topic have cosine about 0.5, as similar products do under a
    sentence encoder; queries are catalog rows with the same noise again)."""
    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    if vectors == "random":
        x = unit(rng.normal(size=(n, dim)).astype(np.float32))
        return x, x[rng.integers(0, n, queries)] + 0.1 * rng.normal(size=(queries, dim)).astype(np.float32)
    topics = unit(rng.normal(size=(max(1, n // 500), dim)))
    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 100_000):  # in slices: a 1M x 384 float64 noise matrix would be 3 GB
        m = min(n, s + 100_000) - s
        x[s: s + m] = unit(topics[rng.integers(0, len(topics), m)]
                           + rng.normal(size=(m, dim)).astype(np.float32) / np.sqrt(dim))
    q = unit(x[rng.integers(0, n, queries)] + rng.normal(size=(queries, dim)).astype(np.float32) / np.sqrt(dim))
    return x, q


def bench_index(n: int, dim: int = 384, queries: int = 200, seed: int = 0, vectors: str = "random",
                kinds: tuple[str, ...] = ("flat", "hnsw")) -> dict:
    from vitrine.index.vector import VectorIndex

    rng = np.random.default_rng(seed)
    x, q = index_vectors(n, dim, queries, vectors, rng)
    out = {}
    for kind in kinds:
        t0 = time.perf_counter()
        idx = VectorIndex(kind=kind).build(x)
        build = time.perf_counter() - t0
        lat = []
        for v in q:
            t0 = time.perf_counter()
            idx.search(v, 200)
            lat.append(time.perf_counter() - t0)
        exact = (x @ q[:20].T).argsort(0)[::-1][:10].T
        got = idx.search(q[:20], 10)[0]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got, strict=True)])
        out[kind] = {"build_s": round(build, 2), **_pct(lat), "recall@10_vs_exact": round(float(recall), 3),
                     "peak_rss_gb": _peak_rss_gb()}
        print(json.dumps({"n": n, "vectors": vectors, kind: out[kind]}), file=sys.stderr, flush=True)
        del idx
    return out


def _peak_rss_gb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def bench_bm25(n: int, queries: int = 200) -> dict:
    from vitrine.features.lexical import BM25Index

    rng = np.random.default_rng(0)
    words = np.array([f"w{i}" for i in range(20000)])
    picks = words[rng.integers(0, len(words), (n, 38))]  # one draw for all rows: per-row draws took minutes at 1M
    docs = [{"title": " ".join(p[:8]), "description": " ".join(p[8:])} for p in picks]
    t0 = time.perf_counter()
    idx = BM25Index().fit(docs)
    build = time.perf_counter() - t0
    lat = []
    for _ in range(queries):
        qtext = " ".join(words[rng.integers(0, len(words), 3)])
        t0 = time.perf_counter()
        idx.score(qtext)
        lat.append(time.perf_counter() - t0)
    return {"build_s": round(build, 2), **_pct(lat)}


def bench_fusion(path: str, methods: list[str], judgments: bool, seconds: float, k: int = 10) -> dict:
    import warnings

    from vitrine.data.catalog import Catalog
    from vitrine.data.dataset import load_dataset
    from vitrine.evaluate.metrics import evaluate_rankings
    from vitrine.evaluate.search import _truth, split_judgments
    from vitrine.results import top_k
    from vitrine.retrieve import Retriever

    ds = load_dataset(path)
    train, test = split_judgments(ds.judgments)
    truth = _truth(test)  # the same relevance map `vitrine evaluate search` scores against
    cat = Catalog(ds.products, root=ds.root)
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = Retriever(item_fusion="average").fit(cat)
    out: dict = {"dataset": str(path), "queries": len(truth), "judgments": judgments,
                 "fit_s": round(time.time() - t0, 1), "methods": {}}
    ids = cat.ids
    allrows = np.arange(len(cat))
    base = r.baseline_scorers()
    for label in methods:
        # "concat+j": that method trained on the split=train judgments as well, whatever --judgments says.
        m, use_j = (label[:-2], True) if label.endswith("+j") else (label, judgments)
        t0 = time.time()
        r.item_fusion, r.item_fusion_ = m, m
        r.fusion_, r.item_index_, r.item_vectors_ = None, None, None
        if m != "average":
            r.fusion_seconds = seconds
            r._fit_modalities(ds.reviews)
            r._fit_fusion(train if use_j else None)
        r._build_items()
        fit_s = time.time() - t0
        scorers = {name: base[name] for name in ("bm25", "dense", "image") if name in base}
        if m == "average":
            iv = r.item_vectors_
            scorers["item"] = lambda q, rows, iv=iv: iv[rows] @ r._text_vec(q)
        else:
            scorers["item"] = r.baseline_scorers()["item"]
        runs: dict[str, dict[str, list[str]]] = {name: {} for name in [*scorers, "retriever"]}
        t1 = time.time()
        for q in truth:
            for name, fn in scorers.items():
                runs[name][q] = list(ids[top_k(np.asarray(fn(q, allrows), np.float64), k)])
            runs["retriever"][q] = list(ids[r.retrieve(q, k=k).rows])
        res = {name: evaluate_rankings(truth, run, k=k) for name, run in runs.items()}
        out["methods"][label] = {"fit_s": round(fit_s, 1), "eval_s": round(time.time() - t1, 1),
                             "weights": r.fusion_.modality_weights() if r.fusion_ is not None else None,
                             "metrics": res}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--encode-products", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-encoders", action="store_true")
    ap.add_argument("--skip-bm25", action="store_true")
    ap.add_argument("--skip-index", action="store_true")
    ap.add_argument("--vectors", choices=["random", "clustered"], default="random",
                    help="index rows: random unit vectors, or topic clusters like real embeddings")
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw"], help="index kinds to build")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--fusion", metavar="DATASET", help="compare item-fusion methods on a dataset's test queries")
    ap.add_argument("--methods", nargs="+", default=["average", "concat", "weighted", "attention"])
    ap.add_argument("--judgments", action="store_true", help="train the fusion on split=train judgments too")
    ap.add_argument("--fusion-seconds", type=float, default=20.0)
    args = ap.parse_args()
    if args.fusion:
        import torch

        torch.set_num_threads(args.threads)
        res = bench_fusion(args.fusion, args.methods, args.judgments, args.fusion_seconds)
        print(json.dumps(res, indent=None if args.json else 2))
        return
    import faiss
    import torch

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    res: dict = {"threads": args.threads}
    if not args.skip_encoders:
        res["encoders"] = bench_encoders(args.encode_products, args.encode_products)
    if not args.skip_index:
        res["index"] = {str(n): bench_index(n, vectors=args.vectors, kinds=tuple(args.kinds)) for n in args.sizes}
    if not args.skip_bm25:
        res["bm25"] = {str(n): bench_bm25(n) for n in args.sizes}
    print(json.dumps(res, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
