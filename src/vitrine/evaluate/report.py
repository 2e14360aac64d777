"""`vitrine report`: an HTML page of evaluation plots (matplotlib PNGs).

Plots: metric by cutoff (ours and each baseline), per-segment bars,
estimated vs true examination propensity by position, and feature
importance (by feature and by explanation group).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)  # pyplot keeps every open figure alive otherwise
    return path


def plot_metric_by_cutoff(curves: Mapping[str, Mapping[int, float]], metric: str, path: Path) -> Path:
    """One line per model: metric value at each cutoff."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, pts in curves.items():
        ks = sorted(pts)
        ax.plot(ks, [pts[k] for k in ks], marker="o", label=name)
    ax.set_xlabel("cutoff k")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by cutoff")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_segments(segments: Mapping[str, Mapping[str, float]], metric: str, path: Path) -> Path:
    """Grouped bars: segment -> model -> value."""
    plt = _plt()
    segs = list(segments)
    models = sorted({m for s in segments.values() for m in s})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(segs)), 4))
    w = 0.8 / max(len(models), 1)
    x = np.arange(len(segs))
    for i, m in enumerate(models):
        ax.bar(x + i * w, [segments[s].get(m, 0.0) for s in segs], w, label=m)
    ax.set_xticks(x + w * (len(models) - 1) / 2, segs, rotation=20)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by segment")
    ax.legend()
    return _save(plt, fig, path)


def plot_propensities(estimated: Sequence[float], path: Path, true: Sequence[float] | None = None) -> Path:
    """Examination probability by position: estimated (and true when known)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    pos = np.arange(1, len(estimated) + 1)
    ax.plot(pos, estimated, marker="o", label="estimated (EM, PBM)")
    if true is not None:
        ax.plot(np.arange(1, len(true) + 1), true, ls="--", label="true")
    ax.set_xlabel("position")
    ax.set_ylabel("P(examined)")
    ax.set_ylim(0, 1.05)
    ax.set_title("Position bias")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(plt, fig, path)


def plot_importance(importance: Mapping[str, float], path: Path, top: int = 20) -> Path:
    """Horizontal bars of the top features by total gain, coloured by group."""
    from vitrine.rank.features import feature_group

    plt = _plt()
    items = sorted(importance.items(), key=lambda kv: -kv[1])[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(items) + 1)))
    groups = sorted({feature_group(n) for n, _ in items})
    cmap = {g: f"C{i}" for i, g in enumerate(groups)}
    ax.barh([n for n, _ in items], [v for _, v in items], color=[cmap[feature_group(n)] for n, _ in items])
    for g, c in cmap.items():
        ax.bar(0, 0, color=c, label=g)
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance")
    ax.legend(loc="lower right")
    return _save(plt, fig, path)


def write_report(
    out: str | Path,
    *,
    title: str = "vitrine evaluation",
    curves: Mapping[str, Mapping[int, float]] | None = None,
    metric: str = "ndcg",
    segments: Mapping[str, Mapping[str, float]] | None = None,
    propensities: Sequence[float] | None = None,
    true_propensities: Sequence[float] | None = None,
    importance: Mapping[str, float] | None = None,
    summary: Mapping | None = None,
) -> Path:
    """Write ``out/index.html`` and its PNGs; returns the HTML path.

    Every argument is optional; a plot is drawn for each one given.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if summary:
        parts.append("<h2>Summary</h2><pre>" + html.escape(json.dumps(summary, indent=2, default=float)) + "</pre>")
    figs: list[tuple[str, Path]] = []
    if curves:
        figs.append((f"{metric} by cutoff", plot_metric_by_cutoff(curves, metric, out / "metric_by_cutoff.png")))
    if segments:
        figs.append((f"{metric} by segment", plot_segments(segments, metric, out / "segments.png")))
    if propensities is not None:
        figs.append(("Examination propensity", plot_propensities(propensities, out / "propensity.png",
                                                                true_propensities)))
    if importance:
        figs.append(("Feature importance", plot_importance(importance, out / "importance.png")))
    for cap, p in figs:
        parts.append(f'<figure><img src="{p.name}" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)}'
                     "</figcaption></figure>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) +
            "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}img{max-width:100%}</style>"
            "</head><body>" + "\n".join(parts) + "</body></html>")
    path = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def report_for_search(dataset: str | Path, out: str | Path, protocol: str = "rerank",
                      cutoffs: Sequence[int] = (1, 3, 5, 10, 20), progress: bool = False) -> Path:  # fmt: skip
    """Evaluate search on a dataset folder (as `vitrine evaluate search`) and
    write the report: metric by cutoff for vitrine and baselines, NDCG@10 by
    query length, the ranker's propensities (and the truth of a synthetic
    shop) and feature importance."""
    from vitrine.engine import Engine
    from vitrine.evaluate.search import run_search

    from vitrine.data.dataset import load_dataset
    from vitrine.evaluate.metrics import metrics_by_cutoff, ndcg_at_k
    from vitrine.evaluate.search import _truth, baseline_scorers, split_judgments
    from vitrine.results import top_k

    engine = Engine(home=Path(out) / ".home")
    summary = run_search(dataset, protocol=protocol, k=10, progress=progress, engine=engine).to_dict()
    curves: dict[str, dict[int, float]] = {}
    ds = load_dataset(dataset)
    _, test = split_judgments(ds.judgments)
    truth = _truth(test)
    K = max(cutoffs)
    ids = engine.catalog_.ids
    runs: dict[str, dict[str, list[str]]] = {"vitrine": {}}
    scorers = baseline_scorers(engine)
    runs.update({b: {} for b in scorers})
    for q in truth:
        rows = engine.catalog_.indices(list(truth[q])) if protocol == "rerank" else np.arange(len(ids))
        if protocol == "retrieve":
            runs["vitrine"][q] = engine.search(q, k=K).item_ids
        else:
            runs["vitrine"][q] = list(ids[rows[top_k(engine.score(q, rows), K)]])
        for name, fn in scorers.items():
            runs[name][q] = list(ids[rows[top_k(np.asarray(fn(q, rows), dtype=np.float64), K)]])
    for name, r in runs.items():
        by = metrics_by_cutoff(truth, r, cutoffs=cutoffs, metrics=("ndcg",))
        curves[name] = {k: v[f"ndcg@{k}"] for k, v in by.items()}
    seg: dict[str, dict[str, float]] = {}
    for name, r in runs.items():
        for q in truth:
            n = len(q.split())
            s = "1 word" if n == 1 else "2 words" if n == 2 else "3+ words"
            seg.setdefault(s, {}).setdefault(name, []).append(ndcg_at_k(truth[q], r.get(q, []), 10))
    segments = {s: {m: float(np.mean(v)) for m, v in d.items()} for s, d in sorted(seg.items())}
    ranker = engine.ranker_
    true_p = None
    try:
        from vitrine.data.synth import load_truth

        true_p = load_truth(dataset).propensities
    except Exception:  # noqa: BLE001 - not a synthetic shop
        pass
    prop = getattr(ranker, "propensities_", None)
    return write_report(out, title=f"vitrine search report: {ds.name} ({protocol})", curves=curves,
                        segments=segments, propensities=None if prop is None else list(prop),
                        true_propensities=None if true_p is None else list(true_p),
                        importance=ranker.importance() if hasattr(ranker, "importance") else None,
                        summary=summary)
