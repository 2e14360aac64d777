"""Live shopper profiles: what each pseudonymous shopper did, updated per event.

A profile keeps the recent positive events (catalog rows with their event
weights, oldest first, the input of every personal model), the products
bought, and decayed affinities to category, brand, colour and price band.
Profiles change on every ``observe`` without retraining and are erased by
``forget``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitrine.data.catalog import Catalog
from vitrine.personal.content import _s, category_path

ATTRIBUTES = ("category", "brand", "color", "price_band")


@dataclass
class Profile:
    """One shopper's live state."""

    rows: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    bought: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)
    affinity: dict[str, dict[int, float]] = field(default_factory=lambda: {a: {} for a in ATTRIBUTES})
    events: int = 0
    version: int = 0  # bumped on every change; 0 = as fitted


class AttributeCodes:
    """Integer code of each product's leaf category, brand, colour and price band (-1 unknown)."""

    def __init__(self) -> None:
        self.vocab: dict[str, dict[str, int]] = {a: {} for a in ATTRIBUTES}
        self.codes: dict[str, np.ndarray] = {a: np.zeros(0, np.int64) for a in ATTRIBUTES}

    def update(self, catalog: Catalog, bands: np.ndarray) -> None:
        p = catalog.products
        n = len(catalog)
        vals = {
            "category": [" > ".join(category_path(c)) for c in p["category"]],
            "brand": [_s(b).lower() for b in p["brand"]],
            "color": [_s(c).lower() for c in p["color"]],
            "price_band": [
                f"{(category_path(c) or [''])[0]}:{int(b)}" if b >= 0 else ""
                for c, b in zip(p["category"], np.resize(bands, n) if len(bands) else np.full(n, -1), strict=True)
            ],
        }
        for a in ATTRIBUTES:
            voc = self.vocab[a]
            self.codes[a] = np.array([voc.setdefault(v, len(voc)) if v else -1 for v in vals[a]], dtype=np.int64)

    def to_json(self) -> dict:
        return {"vocab": self.vocab, "codes": {a: self.codes[a].tolist() for a in ATTRIBUTES}}

    @classmethod
    def from_json(cls, d: dict) -> AttributeCodes:
        self = cls()
        self.vocab = d["vocab"]
        self.codes = {a: np.asarray(d["codes"][a], dtype=np.int64) for a in ATTRIBUTES}
        return self


class Profiles:
    """Profiles of all shoppers, keyed by pseudonymous user key.

    Parameters
    ----------
    history : positive events kept per profile (newest win).
    decay : affinities are multiplied by this at each new event of the shopper.
    """

    def __init__(self, *, history: int = 200, decay: float = 0.98) -> None:
        self.history, self.decay = history, decay
        self.users: dict[str, Profile] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.users

    def get(self, key: str | None) -> Profile | None:
        return self.users.get(key) if key else None

    def add(self, key: str, row: int, weight: float, purchase: bool, codes: AttributeCodes,
            bump: bool = True) -> Profile:
        """Apply one positive event (weight > 0)."""
        p = self.users.get(key)
        if p is None:
            p = self.users[key] = Profile()
        p.rows.append(int(row))
        p.weights.append(float(weight))
        if len(p.rows) > self.history:
            del p.rows[: len(p.rows) - self.history]
            del p.weights[: len(p.weights) - self.history]
        p.seen.add(int(row))
        if purchase:
            p.bought.add(int(row))
        for a in ATTRIBUTES:
            aff = p.affinity[a]
            if self.decay < 1.0:
                for c in aff:
                    aff[c] *= self.decay
            code = int(codes.codes[a][row]) if row < len(codes.codes[a]) else -1
            if code >= 0:
                aff[code] = aff.get(code, 0.0) + float(weight)
        p.events += 1
        if bump:
            p.version += 1
        return p

    def forget(self, key: str) -> None:
        self.users.pop(key, None)

    def save(self, path: Path) -> None:
        out = {}
        for k, p in self.users.items():
            out[k] = {"rows": p.rows, "weights": p.weights, "bought": sorted(p.bought), "seen": sorted(p.seen),
                      "affinity": {a: {str(c): v for c, v in p.affinity[a].items()} for a in ATTRIBUTES},
                      "events": p.events, "version": p.version}
        path.write_text(json.dumps({"history": self.history, "decay": self.decay, "users": out}))

    @classmethod
    def load(cls, path: Path) -> Profiles:
        d = json.loads(path.read_text())
        self = cls(history=d["history"], decay=d["decay"])
        for k, v in d["users"].items():
            self.users[k] = Profile(
                rows=list(v["rows"]), weights=list(v["weights"]), bought=set(v["bought"]), seen=set(v["seen"]),
                affinity={a: {int(c): w for c, w in v["affinity"][a].items()} for a in ATTRIBUTES},
                events=v["events"], version=v["version"],
            )
        return self
