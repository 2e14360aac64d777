"""HTTP API: each endpoint's happy path and its response shape (issue 6)."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient


def test_search_returns_items_facets_and_paging(client: TestClient) -> None:
    r = client.get("/search", params={"q": "jacket", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 5
    assert [it["position"] for it in body["items"]] == [1, 2, 3, 4, 5]
    assert body["request_id"] and body["model_version"]
    assert body["total"] >= 5
    assert set(body["facets"]) == {"category", "brand", "color", "price", "in_stock"}
    assert body["facets"]["category"] and all(v["count"] > 0 for v in body["facets"]["category"])
    first = body["items"][0]
    assert first["title"] and first["image_url"] == f"/images/{first['product_id']}"
    page2 = client.get("/search", params={"q": "jacket", "limit": 5, "offset": 5}).json()
    assert page2["items"][0]["position"] == 6
    assert not {i["product_id"] for i in page2["items"]} & {i["product_id"] for i in body["items"]}


def test_search_body_is_what_validating_against_its_model_writes(client: TestClient, shop_events) -> None:
    """/search writes its body without FastAPI's validation (speed): it must still be exactly SearchOut."""
    from vitrine.serve.schemas import SearchOut

    user = shop_events["user_id"].iloc[0]
    for params in ({"q": "jacket"}, {"q": "red shoes", "user_id": user, "explain": True, "limit": 20},
                   {"q": "shoes", "brand": "nobrand-xyz"}, {"facets": False}, {"q": "bag", "offset": 30},
                   {"q": "shoes", "price_min": 20, "price_max": 60, "in_stock": True, "explain": True}):
        r = client.get("/search", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", params
        body = r.json()
        assert SearchOut.model_validate(body).model_dump(mode="json") == body, params


def test_search_filters_apply_and_facets_ignore_their_own_filter(client: TestClient) -> None:
    base = client.get("/search", params={"q": "shoes", "limit": 50}).json()
    brand = base["facets"]["brand"][0]["value"]
    r = client.get("/search", params={"q": "shoes", "brand": brand, "limit": 50}).json()
    assert r["items"] and all(i["brand"].lower() == brand.lower() for i in r["items"])
    assert len(r["facets"]["brand"]) > 1  # the brand facet still shows the other brands
    r = client.get("/search", params={"q": "shoes", "price_min": 20, "price_max": 60, "limit": 50}).json()
    assert all(20 <= i["price"] <= 60 for i in r["items"])
    top = base["facets"]["category"][0]["value"]
    r = client.get("/search", params={"q": "shoes", "category": top, "limit": 50}).json()
    assert all(i["category"].startswith(top) for i in r["items"])
    assert all(v["value"].startswith(top + " > ") for v in r["facets"]["category"])  # next level down
    r = client.get("/search", params={"q": "shoes", "in_stock": True, "limit": 50}).json()
    assert all(i["in_stock"] is not False for i in r["items"])


def test_search_explain_and_personalize_flags(client: TestClient, shop_events) -> None:
    plain = client.get("/search", params={"q": "dress"}).json()
    assert all(i["explanation"] is None for i in plain["items"])
    expl = client.get("/search", params={"q": "dress", "explain": True}).json()
    assert all(isinstance(i["explanation"], dict) and i["explanation"] for i in expl["items"])
    user = shop_events["user_id"].value_counts().index[0]
    on = client.get("/search", params={"q": "dress", "user_id": user}).json()
    off = client.get("/search", params={"q": "dress", "user_id": user, "personalize": False}).json()
    assert on["personalized"] is True and off["personalized"] is False
    anon = client.get("/search", params={"q": "dress"}).json()
    assert [i["product_id"] for i in off["items"]] == [i["product_id"] for i in anon["items"]]


def test_empty_query_returns_popular_products(client: TestClient) -> None:
    r = client.get("/search")
    assert r.status_code == 200 and len(r.json()["items"]) == 10


def test_rules_pin_boost_bury(client: TestClient, auth: dict) -> None:
    q = "backpack"
    before = [i["product_id"] for i in client.get("/search", params={"q": q, "limit": 20}).json()["items"]]
    other = client.get("/search", params={"q": "vase", "limit": 1}).json()["items"][0]["product_id"]
    rules = {"pin": [other, before[5]], "bury": [before[0]], "boost": {}}
    r = client.put(f"/rules/{q}", json=rules, headers=auth)
    assert r.status_code == 200, r.text
    assert client.get("/rules/BACKPACK").json()["pin"] == [other, before[5]]  # normalised query
    after = client.get("/search", params={"q": "  Backpack ", "limit": 20}).json()["items"]
    ids = [i["product_id"] for i in after]
    assert ids[:2] == [other, before[5]] and after[0]["pinned"] and after[1]["pinned"]
    assert before[0] not in ids[:10]
    assert any(r["query"] == q for r in client.get("/rules").json())
    assert client.delete(f"/rules/{q}", headers=auth).status_code == 204
    assert client.get(f"/rules/{q}").status_code == 404
    back = [i["product_id"] for i in client.get("/search", params={"q": q, "limit": 20}).json()["items"]]
    assert back == before


def test_recommend_and_similar(client: TestClient, shop_events) -> None:
    user = shop_events["user_id"].iloc[0]
    r = client.get(f"/recommend/{user}", params={"limit": 7})
    assert r.status_code == 200 and len(r.json()["items"]) == 7
    stranger = client.get("/recommend/nobody-ever", params={"limit": 5}).json()["items"]
    assert len(stranger) == 5
    pid = shop_events["product_id"].iloc[0]
    sim = client.get(f"/similar/{pid}", params={"limit": 6})
    assert sim.status_code == 200
    ids = [i["product_id"] for i in sim.json()["items"]]
    assert len(ids) == 6 and pid not in ids
    assert client.get("/similar/no-such-product").status_code == 404


def test_products_and_images(client: TestClient) -> None:
    pid = client.get("/search", params={"q": "lamp", "limit": 1}).json()["items"][0]["product_id"]
    p = client.get(f"/products/{pid}")
    assert p.status_code == 200 and p.json()["product_id"] == pid and isinstance(p.json()["tags"], list)
    img = client.get(f"/images/{pid}")
    assert img.status_code == 200 and img.headers["content-type"].startswith("image/")
    assert client.get("/products/nope").status_code == 404
    assert client.get("/images/nope").status_code == 404


def test_suggest_completes_logged_queries_and_catalog_terms(client: TestClient, shop_events) -> None:
    query = shop_events["query"].dropna().value_counts().index[0]
    r = client.get("/suggest", params={"q": query[:3]})
    assert r.status_code == 200
    texts = [s["text"].lower() for s in r.json()["suggestions"]]
    assert query.lower() in texts
    kinds = {s["kind"] for s in client.get("/suggest", params={"q": "a", "limit": 20}).json()["suggestions"]}
    assert kinds & {"product", "brand", "category"}
    assert client.get("/suggest", params={"q": "zzzzqqq"}).json()["suggestions"] == []


def test_suggest_ranks_by_shopper_affinity(client: TestClient, auth: dict) -> None:
    """Two shoppers with opposite histories get different orders for one prefix."""
    state = client.app.state.vitrine
    engine = state.engine
    cats = engine.catalog_.products["category"].str.split(" > ").str[0]
    top = cats.value_counts().index[:2]
    rows = {c: engine.catalog_.products.index[cats == c][:5] for c in top}
    for user, cat in (("aff-a", top[0]), ("aff-b", top[1])):
        events = [{"user_id": user, "product_id": engine.catalog_.products.at[i, "product_id"], "event": "purchase"}
                  for i in rows[cat]]
        assert client.post("/events", json=events, headers=auth).status_code == 200
    a = client.get("/suggest", params={"q": "s", "user_id": "aff-a", "limit": 10}).json()["suggestions"]
    b = client.get("/suggest", params={"q": "s", "user_id": "aff-b", "limit": 10}).json()["suggestions"]
    assert [s["text"] for s in a] != [s["text"] for s in b]


def test_suggest_chinese_prefix(client: TestClient, auth: dict) -> None:
    r = client.put("/products/zh-1", json={"title": "运动鞋 男款 轻便", "brand": "飞跃", "category": "鞋 > 运动鞋",
                                           "price": 199.0, "sales": 50}, headers=auth)
    assert r.status_code == 200, r.text
    state = client.app.state.vitrine
    state.suggest.build(state.engine)
    texts = [s["text"] for s in client.get("/suggest", params={"q": "运动"}).json()["suggestions"]]
    assert "运动鞋 男款 轻便" in texts or "运动鞋" in texts
    assert client.get("/suggest", params={"q": "飞"}).json()["suggestions"][0]["text"] == "飞跃"


def test_health_metrics_openapi(client: TestClient) -> None:
    client.get("/search", params={"q": "wallet"})
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["products"] > 0 and h["model_version"]
    m = client.get("/metrics")
    assert m.status_code == 200
    text = m.text
    assert 'vitrine_request_seconds_bucket{endpoint="/search"' in text
    assert "vitrine_events_ingested_total" in text
    assert "vitrine_index_products" in text and "vitrine_model_info{version=" in text
    spec = client.get("/openapi.json").json()
    ops = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"search", "search_image", "recommend", "similar", "record_events", "put_product",
            "delete_product", "get_product", "forget_user", "suggest", "health", "metrics",
            "reload_model", "start_fit", "fit_status", "put_rules", "product_image"} <= ops


def test_storefront_page_and_static(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and 'id="results"' in r.text and "/static/app.js" in r.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_requests_at_once_are_bounded_by_the_serve_threads_setting(shared_home, settings) -> None:
    import anyio.to_thread

    from vitrine.serve.app import create_app, serve_threads

    assert serve_threads(settings.model_copy(update={"serve_threads": 0})) >= 2
    before = sys.getswitchinterval()
    app = create_app(home=shared_home, settings=settings.model_copy(update={"serve_threads": 3,
                                                                           "serve_switch_ms": 2.0}))
    with TestClient(app) as c:
        assert c.get("/search", params={"q": "jacket", "limit": 3}).status_code == 200
        assert c.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 3
        assert sys.getswitchinterval() == pytest.approx(0.002)  # the GIL switch interval, while serving
    assert sys.getswitchinterval() == before
