"""Shared pieces of the evaluation protocols: the result record and splits."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vitrine.engine import Engine


@dataclass
class EvalReport:
    """What `vitrine evaluate … --json` prints (the evaluation contract)."""

    dataset: str
    task: str
    protocol: str
    k: int
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d


def evaluation_engine(engine: Engine | None, k: int) -> Engine:
    """The engine a run fits, its models tuned for NDCG at the cutoff the run scores.

    A shop's own ``VITRINE_CUTOFF`` wins: then the run measures the models the shop would serve.
    """
    engine = engine or Engine(home=Path(".vitrine-eval"))
    if "cutoff" not in engine.settings.model_fields_set:
        engine.settings = engine.settings.model_copy(update={"cutoff": k})
    return engine


def stable_half(product_id: str) -> bool:
    """The fixed half of products chosen by a hash of the id (cross-modal protocol)."""
    return hashlib.md5(str(product_id).encode()).digest()[0] % 2 == 0


def input_warnings(ds) -> dict[str, list[str]]:
    """The loader's findings (rows skipped, fields cleared) for the report's ``extra``.

    An evaluation that silently dropped judgments or events would report a
    number about a different folder than the one named.
    """
    found = [str(w) for w in getattr(ds, "warnings", None) or []]
    return {"input_warnings": found} if found else {}
