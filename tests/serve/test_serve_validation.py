"""Bad input gets a clear 4xx, never a 500; size limits; image upload checks (issue 6)."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image


def _png(w: int = 32, h: int = 32, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 1000}, {"offset": -1}, {"price_min": -3}, {"price_min": 50, "price_max": 10},
    {"in_stock": "maybe"}, {"q": "x" * 600}, {"personalize": "perhaps"},
])
def test_search_bad_params_are_422(client: TestClient, params: dict) -> None:
    r = client.get("/search", params=params)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(("invalid request", "price_min"))


@pytest.mark.parametrize("body", [
    {"user_id": "u", "product_id": "p001"},                          # no event
    {"user_id": "u", "product_id": "p001", "event": "like"},         # unknown type
    {"user_id": "", "product_id": "p001", "event": "click"},         # blank id
    {"user_id": "u", "product_id": "p001", "event": "click", "position": 0},
    {"user_id": "u", "product_id": "p001", "event": "click", "extra": 1},
    {"user_id": "u", "product_id": "p001", "event": "click", "timestamp": "yesterday"},
    {"user_id": "u\u0000x", "product_id": "p001", "event": "click"},
    [],
    "not an event",
])
def test_bad_events_are_422(client: TestClient, auth: dict, body) -> None:
    r = client.post("/events", json=body, headers=auth)
    assert r.status_code == 422, r.text


def test_unknown_product_event_is_422_and_stores_nothing(client: TestClient, auth: dict) -> None:
    engine = client.app.state.vitrine.engine
    before = engine.store.counts()["events"]
    r = client.post("/events", json=[{"user_id": "v1", "product_id": "p001", "event": "click"},
                                     {"user_id": "v1", "product_id": "nope", "event": "click"}], headers=auth)
    assert r.status_code == 422 and "nope" in r.json()["detail"]
    assert r.json()["problems"][0]["column"] == "product_id"
    assert engine.store.counts()["events"] == before


def test_malformed_json_is_4xx(client: TestClient, auth: dict) -> None:
    r = client.post("/events", content=b"{not json", headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422


def test_bad_products_are_422(client: TestClient, auth: dict) -> None:
    for body in ({"price": -1}, {"rating": 9}, {"image": "../../etc/passwd"}, {"image": "file:///etc/passwd"},
                 {"nope": 1}, {"tags": "notalist"}):
        assert client.put("/products/bad-1", json=body, headers=auth).status_code == 422, body
    assert client.delete("/products/never-there", headers=auth).status_code == 404


def test_request_size_limit(fresh) -> None:
    client, auth, _ = fresh(max_request_bytes=2000)
    big = [{"user_id": "u", "product_id": "p001", "event": "impression"}] * 200
    r = client.post("/events", json=big, headers=auth)
    assert r.status_code == 413 and "larger than 2000" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 500

    r = client.post("/events", content=chunks(), headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_image_search_accepts_an_image(client: TestClient) -> None:
    r = client.post("/search/image", files={"image": ("q.png", _png(), "image/png")},
                    data={"q": "red", "limit": "5", "explain": "true"})
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 5


def test_image_upload_checks(client: TestClient) -> None:
    post = lambda data, ctype, name="q.png": client.post(  # noqa: E731
        "/search/image", files={"image": (name, data, ctype)})
    assert post(b"hello", "text/plain", "a.txt").status_code == 415
    assert post(b"\x89PNG\r\n\x1a\nbroken", "image/png").status_code == 422
    assert post(b"", "image/png").status_code == 422
    bmp = io.BytesIO()
    Image.new("RGB", (8, 8)).save(bmp, "BMP")
    assert post(bmp.getvalue(), "image/png").status_code == 415  # the bytes decide, not the label
    # a decompression bomb: a tiny file that claims 30000 x 30000 pixels
    bomb = io.BytesIO()
    Image.new("1", (30000, 30000)).save(bomb, "PNG")
    assert len(bomb.getvalue()) < 1_000_000
    r = post(bomb.getvalue(), "image/png")
    assert r.status_code == 413 and "pixels" in r.json()["detail"]
    assert client.post("/search/image", data={"q": "red"}).status_code == 422  # no file
