"""Fixtures shared across the suite: small synthetic shops and ../shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """Path of a ../shared dataset, skipping the test cleanly when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (the ../shared benchmark data is only beside CI and dev checkouts)")
    return path


@pytest.fixture(scope="session")
def small_shop(tmp_path_factory) -> Path:
    """A 600-product synthetic shop with images, events, reviews and judgments."""
    from vitrine.data.synth import generate

    out = tmp_path_factory.mktemp("shop") / "shop"
    generate(out, products=600, users=150, seed=1)
    return out
