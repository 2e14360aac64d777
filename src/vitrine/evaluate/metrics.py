"""Ranking metrics as typed pure functions with one shared signature.

Each takes ``relevant`` (product id -> graded gain, or a collection of
relevant ids, all with grade 1), the ``ranked`` list, best first, and ``k``.
Graded NDCG uses gain 2^grade - 1. Per-query values are aggregated with
``mean_over_queries``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

Relevance = Mapping[str, float] | Collection[str]


def _grades(relevant: Relevance) -> dict[str, float]:
    if isinstance(relevant, Mapping):
        return {str(k): float(v) for k, v in relevant.items()}
    return {str(k): 1.0 for k in relevant}


def dcg_at_k(gains: Sequence[float], k: int = 10) -> float:
    """Discounted cumulative gain of gains in rank order: sum g_i / log2(i + 1)."""
    g = np.asarray(list(gains)[:k], dtype=np.float64)
    return float(np.sum(g / np.log2(np.arange(2, len(g) + 2)))) if len(g) else 0.0


def ndcg_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """DCG of the ranking over DCG of the ideal ranking, gain 2^grade - 1. Perfect score is 1.0."""
    grades = _grades(relevant)
    ideal = dcg_at_k(sorted((2.0 ** g - 1 for g in grades.values()), reverse=True), k)
    if ideal <= 0:
        return 0.0
    return dcg_at_k([2.0 ** grades.get(str(p), 0.0) - 1 for p in ranked[:k]], k) / ideal


def _hits(relevant: Relevance, ranked: Sequence[str], k: int) -> list[bool]:
    grades = _grades(relevant)
    return [grades.get(str(p), 0.0) > 0 for p in ranked[:k]]


def _n_relevant(relevant: Relevance) -> int:
    return sum(1 for g in _grades(relevant).values() if g > 0)


def hit_rate_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """1.0 when any relevant product is in the top k, else 0.0. Perfect score is 1.0."""
    return float(any(_hits(relevant, ranked, k)))


def precision_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """Relevant products in the top k, divided by k. Perfect score is 1.0 (when k <= #relevant)."""
    return sum(_hits(relevant, ranked, k)) / k if k > 0 else 0.0


def recall_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """Relevant products in the top k over all relevant products. Perfect score is 1.0."""
    n = _n_relevant(relevant)
    return sum(_hits(relevant, ranked, k)) / n if n else 0.0


def f1_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """Harmonic mean of precision@k and recall@k. Perfect score is 1.0."""
    p, r = precision_at_k(relevant, ranked, k), recall_at_k(relevant, ranked, k)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def mrr_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """1 / rank of the first relevant product in the top k (0 if none). Perfect score is 1.0."""
    for i, hit in enumerate(_hits(relevant, ranked, k)):
        if hit:
            return 1.0 / (i + 1)
    return 0.0


def average_precision_at_k(relevant: Relevance, ranked: Sequence[str], k: int = 10) -> float:
    """Mean of precision@i over ranks i of relevant products in the top k,
    divided by min(k, #relevant). Perfect score is 1.0."""
    n = _n_relevant(relevant)
    if not n:
        return 0.0
    hits, total = 0, 0.0
    for i, hit in enumerate(_hits(relevant, ranked, k)):
        if hit:
            hits += 1
            total += hits / (i + 1)
    return total / min(k, n)


METRICS = {
    "ndcg": ndcg_at_k,
    "hr": hit_rate_at_k,
    "mrr": mrr_at_k,
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "map": average_precision_at_k,
}
DEFAULT_METRICS = ("ndcg", "hr", "mrr", "precision", "recall")


def mean_over_queries(values: Iterable[float]) -> float:
    """Plain mean of per-query values (0.0 for none)."""
    arr = np.fromiter(values, dtype=np.float64)
    return float(arr.mean()) if len(arr) else 0.0


def evaluate_rankings(
    truth: Mapping[str, Relevance],
    rankings: Mapping[str, Sequence[str]],
    k: int = 10,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric at k over the queries of ``truth`` (a missing ranking scores 0)."""
    out = {}
    for m in metrics:
        fn = METRICS[m]
        out[f"{m}@{k}"] = mean_over_queries(fn(rel, rankings.get(q, []), k) for q, rel in truth.items())
    return out


def coverage(rankings: Iterable[Sequence[str]], n_products: int, k: int = 10) -> float:
    """Share of the catalog that appears in any top k. Perfect score is 1.0."""
    seen: set[str] = set()
    for r in rankings:
        seen.update(r[:k])
    return len(seen) / n_products if n_products else 0.0


def intra_list_diversity(rankings: Iterable[Sequence[str]], attribute: Mapping[str, str], k: int = 10) -> float:
    """Mean share of distinct attribute values (e.g. categories) in each top k."""
    vals = [len({attribute.get(p) for p in r[:k]}) / max(1, len(r[:k])) for r in rankings if len(r)]
    return mean_over_queries(vals)


def novelty(rankings: Iterable[Sequence[str]], popularity: Mapping[str, float], k: int = 10) -> float:
    """Mean self-information -log2(p) of recommended products, p = share of interactions."""
    vals = [-np.log2(max(popularity.get(p, 0.0), 1e-9)) for r in rankings for p in r[:k]]
    return mean_over_queries(vals)


def metrics_by_cutoff(
    truth: Mapping[str, Relevance],
    rankings: Mapping[str, Sequence[str]],
    cutoffs: Sequence[int] = (1, 3, 5, 10, 20),
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[int, dict[str, float]]:
    """:func:`evaluate_rankings` at each cutoff: k -> {"<metric>@k": value}."""
    return {k: evaluate_rankings(truth, rankings, k=k, metrics=metrics) for k in cutoffs}
