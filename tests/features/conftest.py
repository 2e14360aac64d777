"""Shared test doubles for the feature modules."""

import hashlib

import numpy as np
import pytest


class HashEncoder:
    """Deterministic stand-in for the text encoder: one random unit vector per distinct text;
    remembers every batch it was asked to encode."""

    def __init__(self, dim: int = 16) -> None:
        self.dim, self.calls = dim, []

    def encode(self, texts, progress=False):
        self.calls.append(list(texts))
        out = []
        for t in texts:
            rng = np.random.default_rng(int.from_bytes(hashlib.sha1(t.encode()).digest()[:4], "little"))
            v = rng.standard_normal(self.dim)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, np.float32).reshape(len(texts), self.dim)


@pytest.fixture
def hash_encoder() -> HashEncoder:
    return HashEncoder()
