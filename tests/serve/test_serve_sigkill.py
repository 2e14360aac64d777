"""SIGKILL during event ingest: every acknowledged event is in the store after restart (issue 6)."""

from __future__ import annotations

import threading
import time

import duckdb
import httpx
import pytest

from _server import Server  # noqa: I001  (tests/serve is on sys.path under pytest's rootdir import mode)

BATCH = 50


def test_acknowledged_events_survive_sigkill(make_home, settings, tmp_path, shop_events) -> None:
    from vitrine.serve.keys import KeyStore

    home = make_home()
    key = KeyStore(home).create("kill-test")
    headers = {"Authorization": f"Bearer {key}"}
    pids = shop_events["product_id"].unique()[:20].tolist()
    server = Server(home, settings.secret, tmp_path / "server.log")
    acked: list[str] = []
    sent = [0]
    try:
        server.wait_healthy()
        stop = threading.Event()

        def sender(worker: int) -> None:
            with httpx.Client(base_url=server.url, headers=headers, timeout=10) as c:
                b = 0
                while not stop.is_set():
                    ids = [f"k{worker}-{b}-{i}" for i in range(BATCH)]
                    batch = [{"user_id": f"kill-u{i % 7}", "product_id": pids[i % len(pids)],
                              "event": "click", "request_id": rid} for i, rid in enumerate(ids)]
                    b += 1
                    sent[0] += 1
                    try:
                        r = c.post("/events", json=batch)
                    except httpx.HTTPError:
                        return  # the server died mid-request: not acknowledged
                    if r.status_code == 200:
                        acked.extend(ids)

        threads = [threading.Thread(target=sender, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 60
        while len(acked) < 20 * BATCH and time.time() < deadline:
            time.sleep(0.05)
        server.kill()  # SIGKILL, with requests in flight
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        server.stop()
    assert len(acked) >= 5 * BATCH, "too few batches were acknowledged before the kill"

    # restart on the same home: it must come up and serve
    server = Server(home, settings.secret, tmp_path / "server2.log")
    try:
        server.wait_healthy()
        assert httpx.get(server.url + "/search", params={"q": "bag"}, timeout=120).status_code == 200
    finally:
        server.stop()
    con = duckdb.connect(str(home / "store.duckdb"), read_only=True)
    stored = {r[0] for r in con.execute("SELECT request_id FROM events WHERE request_id LIKE 'k%'").fetchall()}
    con.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
