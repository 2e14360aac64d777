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


@pytest.fixture(scope="session")
def fitted_home(small_shop, tmp_path_factory) -> Path:
    """A home with ``small_shop`` ingested, fitted and saved once for the session.

    Tests that change state copy it (``copy_home``) so they do not see each other.
    """
    from vitrine.engine import Engine

    home = tmp_path_factory.mktemp("fitted") / "home"
    engine = Engine(home=home)
    engine.ingest(small_shop)
    assert engine.fit() is engine  # the estimator contract: fit returns self
    engine.save()
    engine.close()
    return home


@pytest.fixture
def copy_home(fitted_home, tmp_path) -> Path:
    import shutil

    dst = tmp_path / "home"
    shutil.copytree(fitted_home, dst)
    return dst
