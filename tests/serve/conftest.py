"""Fixtures for the service tests: one fitted home from the small synthetic shop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from vitrine.config import Settings

# Developer shortcut: a folder with `shop/` and a fitted `home/` (made by a previous run with the
# same secret) skips the synth + fit, which takes minutes on a busy 2-core machine. Unset in CI.
CACHE = Path(os.environ["VITRINE_SERVE_TEST_CACHE"]) if os.environ.get("VITRINE_SERVE_TEST_CACHE") else None


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(secret="serve-tests-secret")


@pytest.fixture(scope="session")
def serve_shop(tmp_path_factory) -> Path:
    """A 300-product synthetic shop: enough for every endpoint, cheap to fit on 2 cores."""
    from vitrine.data.synth import generate

    if CACHE is not None:
        return CACHE / "shop"
    out = tmp_path_factory.mktemp("serve-shop") / "shop"
    generate(out, products=300, users=60, seed=1)
    return out


@pytest.fixture(scope="session")
def fitted_home(serve_shop: Path, tmp_path_factory, settings: Settings) -> Path:
    """A home with the shop ingested, fitted and saved (built once per session)."""
    from vitrine.engine import Engine

    if CACHE is not None:  # only ever copied, never written
        return CACHE / "home"
    home = tmp_path_factory.mktemp("serve") / "home"
    engine = Engine(settings=settings, home=home)
    engine.ingest(serve_shop)
    engine.fit()
    engine.save()
    engine.close()
    return home


@pytest.fixture(scope="session")
def shop_events(serve_shop: Path) -> pd.DataFrame:
    return pd.read_parquet(serve_shop / "events.parquet")


@pytest.fixture()
def make_home(fitted_home: Path, tmp_path: Path) -> Callable[[], Path]:
    """Copies of the fitted home, for tests that change or erase things."""
    n = [0]

    def make() -> Path:
        n[0] += 1
        dst = tmp_path / f"home{n[0]}"
        shutil.copytree(fitted_home, dst)
        return dst

    return make


def _key(home: Path) -> str:
    from vitrine.serve.keys import KeyStore

    return KeyStore(home).create("tests")


@pytest.fixture(scope="session")
def shared_home(fitted_home: Path, tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("shared") / "home"
    shutil.copytree(fitted_home, dst)
    return dst


@pytest.fixture(scope="session")
def api_key(shared_home: Path) -> str:
    return _key(shared_home)


@pytest.fixture(scope="session")
def client(shared_home: Path, api_key: str, settings: Settings) -> Iterator[TestClient]:
    """A client on a session-wide app (tests that write use ids of their own)."""
    from vitrine.serve.app import create_app

    with TestClient(create_app(home=shared_home, settings=settings)) as c:
        yield c


@pytest.fixture(scope="session")
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture()
def fresh(make_home, settings: Settings) -> Callable[..., tuple[TestClient, dict[str, str], Path]]:
    """A client on its own copy of the home, with a key: (client, auth headers, home)."""
    from vitrine.serve.app import create_app

    clients: list[TestClient] = []

    def make(**overrides) -> tuple[TestClient, dict[str, str], Path]:
        home = make_home()
        key = _key(home)
        c = TestClient(create_app(home=home, settings=settings.model_copy(update=overrides)))
        c.__enter__()
        clients.append(c)
        return c, {"Authorization": f"Bearer {key}"}, home

    yield make
    for c in clients:
        c.__exit__(None, None, None)
