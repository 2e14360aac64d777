"""API keys: stored hashed, required on every write, optional on reads (issue 6)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vitrine.serve.keys import KeyStore

WRITES = [
    ("post", "/events", {"json": {"user_id": "u", "product_id": "p001", "event": "click"}}),
    ("put", "/products/p-new", {"json": {"title": "x"}}),
    ("delete", "/products/p001", {}),
    ("delete", "/users/someone", {}),
    ("put", "/rules/shoes", {"json": {"pin": ["p001"]}}),
    ("delete", "/rules/shoes", {}),
    ("post", "/admin/reload", {}),
    ("post", "/admin/fit", {}),
    ("get", "/admin/fit", {}),
]


@pytest.mark.parametrize(("method", "path", "kw"), WRITES)
def test_writes_need_a_valid_key(client: TestClient, method: str, path: str, kw: dict) -> None:
    r = getattr(client, method)(path, **kw)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = getattr(client, method)(path, headers={"Authorization": "Bearer vk_0000_wrong"}, **kw)
    assert r.status_code == 403
    r = getattr(client, method)(path, headers={"Authorization": "Basic abc"}, **kw)
    assert r.status_code in (401, 403)


def test_keys_are_stored_hashed_and_work_at_once(tmp_path: Path) -> None:
    ks = KeyStore(tmp_path)
    key = ks.create("shop")
    raw = (tmp_path / "keys.json").read_text()
    # the secret is urlsafe base64, so it may itself hold underscores
    secret = key.split("_", 2)[2]
    assert key not in raw and secret not in raw
    assert json.loads(raw)["keys"][0]["name"] == "shop"
    # another process's KeyStore (the server) sees the new key without a restart
    assert KeyStore(tmp_path).verify(key).name == "shop"
    assert KeyStore(tmp_path).verify(key + "x") is None
    assert ks.revoke("shop") == 1 and KeyStore(tmp_path).verify(key) is None


def test_cli_keys_create_prints_the_key_once(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vitrine.cli import app

    out = CliRunner().invoke(app, ["keys", "create", "ci", "--home", str(tmp_path)])
    assert out.exit_code == 0
    key = out.stdout.strip()
    assert key.startswith("vk_") and KeyStore(tmp_path).verify(key).name == "ci"


def test_keyed_reads(fresh) -> None:
    client, auth, _ = fresh(open_reads=False)
    assert client.get("/search", params={"q": "bag"}).status_code == 401
    assert client.get("/search", params={"q": "bag"}, headers={"Authorization": "Bearer nope"}).status_code == 403
    assert client.get("/search", params={"q": "bag"}, headers=auth).status_code == 200
    assert client.get("/recommend/u1").status_code == 401
    assert client.get("/health").status_code == 200  # liveness stays open


def test_no_raw_user_id_or_key_in_logs(fresh, caplog) -> None:
    client, auth, home = fresh()
    with caplog.at_level(logging.DEBUG):
        client.get("/search", params={"q": "bag", "user_id": "alice-secret-id"})
        client.post("/events", json={"user_id": "alice-secret-id", "product_id": "p001", "event": "click"},
                    headers=auth)
        client.get("/recommend/alice-secret-id")
        client.delete("/users/alice-secret-id", headers=auth)
    # the test client's own request log (httpx) is the caller's, not the server's
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "alice-secret-id" not in text and auth["Authorization"].split()[1] not in text
    # nor on disk: the store holds only the keyed hash
    engine = client.app.state.vitrine.engine
    stored = engine.store.query("SELECT DISTINCT user_id FROM events")["user_id"].tolist()
    assert "alice-secret-id" not in stored


def test_access_log_redaction() -> None:
    from vitrine.serve.app import RedactIds

    rec = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                            ("127.0.0.1:1", "GET", "/recommend/bob?limit=3&user_id=bob", "1.1", 200), None)
    RedactIds().filter(rec)
    assert "bob" not in rec.getMessage()
