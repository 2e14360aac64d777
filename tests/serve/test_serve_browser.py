"""The storefront end to end in headless Chromium (Debian's package, not `playwright install`)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from _server import Server  # noqa: I001

CHROMIUM = os.environ.get("VITRINE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
OUT = Path(os.environ.get("VITRINE_TEST_OUT", "")) if os.environ.get("VITRINE_TEST_OUT") else None


def _pick_shopper_and_query(url: str, shop_events) -> tuple[str, str, bool]:
    """A shopper and a query whose ranking personalization changes (checked through the API).

    Returns (shopper, query, changed); changed is False when no pair among the
    most active shoppers and most frequent queries is ranked differently.
    """
    users = shop_events.loc[shop_events["event"] != "impression", "user_id"].value_counts().index[:8]
    queries = shop_events["query"].dropna().value_counts().index[:8]
    with httpx.Client(base_url=url, timeout=30) as c:
        for q in queries:
            off = c.get("/search", params={"q": q, "limit": 12, "facets": False}).json()
            for u in users:
                on = c.get("/search", params={"q": q, "user_id": u, "limit": 12, "facets": False}).json()
                if [i["product_id"] for i in on["items"]] != [i["product_id"] for i in off["items"]]:
                    return u, q, True
    return users[0], queries[0], False


def test_storefront_end_to_end(make_home, settings, tmp_path, shop_events, serve_shop) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (`apt-get install chromium`, "
                    "or `make chromium` as root) to run the browser test")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from vitrine.serve.keys import KeyStore

    home = make_home()
    key = KeyStore(home).create("storefront-test")
    server = Server(home, settings.secret, tmp_path / "server.log")
    shot = (OUT or tmp_path) / "storefront.png"
    try:
        server.wait_healthy()
        user, query, changed = _pick_shopper_and_query(server.url, shop_events)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/#key={key}")
            page.wait_for_selector("#results .card")

            def order() -> list[str]:
                return page.eval_on_selector_all("#results .card", "els => els.map(e => e.dataset.productId)")

            def after(action) -> None:
                prev = page.get_attribute("#results", "data-request-id")
                action()
                page.wait_for_function(
                    "prev => { const r = document.getElementById('results');"
                    " return r.dataset.requestId && r.dataset.requestId !== prev; }", arg=prev)

            # suggestions while typing, then search
            page.fill("#q", "")
            page.type("#q", query[:3], delay=30)
            page.wait_for_selector("#suggestions li", state="visible")
            assert page.locator("#suggestions li").count() > 0
            page.fill("#q", query)
            after(lambda: page.press("#q", "Enter"))
            anonymous = order()
            assert anonymous and query in page.inner_text("#status")
            page.wait_for_function("() => { const i = document.querySelector('#results .card img');"
                                   " return i && i.complete && i.naturalWidth > 0; }")  # product images load

            # switch shopper: the ranking changes
            page.fill("#shopper", user)
            after(lambda: page.click("#shopper-apply"))
            page.wait_for_function("u => document.getElementById('status').textContent.includes(u)", arg=user)
            personal = order()
            assert page.get_attribute("#results", "data-personalized") == "true"
            assert personal != anonymous or not changed
            assert page.locator("#recs .card").count() > 0

            # personalization off: back to the anonymous ranking
            after(lambda: page.uncheck("#personalize"))
            assert "not personalized" in page.inner_text("#status")
            assert order() != personal or not changed
            after(lambda: page.check("#personalize"))
            assert order() == personal

            # why this result
            first = page.locator("#results .card").first
            first.locator(".why").click()
            expl = first.locator(".explanation")
            expl.wait_for(state="visible")
            assert expl.locator(".row").count() >= 2
            assert re.search(r"\d\.\d{3}", expl.inner_text())

            # a click opens the product with similar items
            first.locator(".title").click()
            page.wait_for_selector("#similar .card")

            # image upload
            img = next((serve_shop / "images").glob("*.png"))
            after(lambda: page.set_input_files("#image-input", str(img)))
            assert "image" in page.inner_text("#status")
            assert page.locator("#results .card").count() > 0
            page.locator("#results .card").first.locator(".why").click()

            page.screenshot(path=str(shot), full_page=True)
            browser.close()
            assert not errors, errors
        metrics = httpx.get(server.url + "/metrics").text
        clicks = re.search(r'vitrine_events_ingested_total\{event="click"\} (\d+)', metrics)
        impressions = re.search(r'vitrine_events_ingested_total\{event="impression"\} (\d+)', metrics)
        assert clicks and float(clicks.group(1)) >= 1
        assert impressions and float(impressions.group(1)) >= 10
    finally:
        server.stop()
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")  # noqa: T201
    if not changed:
        pytest.xfail("the page works end to end, but the engine ranked every tried (shopper, query) pair "
                     "the same with personalization on and off, so no ranking change could be shown "
                     "(ranker/personalizer, not the page)")
