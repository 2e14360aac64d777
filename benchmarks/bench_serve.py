"""Load run of the HTTP service on loopback: search latency/throughput and batched event ingest.

    python benchmarks/bench_serve.py                      # the `make demo` shop: 20k products, 5k shoppers
    python benchmarks/bench_serve.py --products 2000 --users 500 --duration 10
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop   # an existing fitted home
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop --client wrk   # wrk drives the searches
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop --in-process    # Engine.search, no HTTP
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop --warm   # each query asked once first
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop --query-mix logged   # the log's query mix
    python benchmarks/bench_serve.py --home .vitrine --shop demo-shop --erase 5   # Engine.forget_user, on copies
    python benchmarks/bench_serve.py --home .vitrine --upserts 20   # live upserts/deletes, then a reload, on a copy
    python benchmarks/bench_serve.py --products 2000 --users 500 --refit   # searches before, during, after POST /admin/fit

It builds (or reuses) a fitted home under .bench/, starts `vitrine serve` in a
subprocess, then drives it with its own asyncio + httpx client (closed loop,
N concurrent connections): personalized `/search` for the shop's shoppers and
queries, then `POST /events` in batches. After the run it stops the server and
counts the ingest run's events in the store: "lost" is acknowledged minus stored.
Prints a Markdown table and, with --json, writes the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_home(products: int, users: int, seed: int, base: Path) -> tuple[Path, Path]:
    """A fitted home for a synthetic shop of this size (reused when present)."""
    from vitrine.data.synth import generate
    from vitrine.engine import Engine

    shop = base / f"serve-shop-{products}-{users}-{seed}"
    home = base / f"serve-home-{products}-{users}-{seed}"
    if not (shop / "products.parquet").exists():
        t = time.time()
        generate(shop, products=products, users=users, seed=seed)
        print(f"synth: {time.time() - t:.0f} s", file=sys.stderr)
    if not (home / "CURRENT").exists():
        t = time.time()
        engine = Engine(home=home)
        engine.ingest(shop)
        engine.fit()
        engine.save()
        engine.close()
        print(f"ingest + fit: {time.time() - t:.0f} s", file=sys.stderr)
    return shop, home


class Server:
    def __init__(self, home: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "ab")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "vitrine.cli", "serve", "--home", str(home),
                                      "--port", str(self.port)], env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 600) -> None:
        import httpx

        end = time.time() + timeout
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited; see its log")
            try:
                if httpx.get(self.url + "/health", timeout=2).json().get("status") == "ok":
                    return
            except Exception:  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not come up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _stats(lat: list[float], errors: int, seconds: float) -> dict:
    a = np.asarray(lat) * 1000 if lat else np.zeros(1)
    return {"requests": len(lat), "errors": errors, "seconds": round(seconds, 2),
            "rps": round(len(lat) / seconds, 1) if seconds else 0.0,
            "p50_ms": round(float(np.percentile(a, 50)), 2), "p90_ms": round(float(np.percentile(a, 90)), 2),
            "p99_ms": round(float(np.percentile(a, 99)), 2), "max_ms": round(float(a.max()), 2)}


async def load_search(url: str, queries: list[str], users: list[str], concurrency: int, duration: float,
                      facets: bool, seed: int, lat: list[float] | None = None) -> dict:
    """Closed-loop searches for ``duration`` s; ``lat`` (when given) collects each latency too."""
    import httpx

    rng = random.Random(seed)
    lat = [] if lat is None else lat
    errors = 0
    end = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            params = {"q": rng.choice(queries), "user_id": rng.choice(users), "personalize": "true",
                      "facets": str(facets).lower(), "limit": "10"}
            t = time.perf_counter()
            try:
                r = await client.get("/search", params=params)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
            else:
                errors += 1

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return _stats(lat, errors, time.perf_counter() - start)


async def refit_run(url: str, key: str, queries: list[str], users: list[str], duration: float) -> dict:
    """One connection of searches before, during and after ``POST /admin/fit`` (the fit shares the cores)."""
    import httpx

    before = await load_search(url, queries, users, 1, duration, False, 1)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        r = await c.post("/admin/fit", headers=auth)
        r.raise_for_status()
        lat: list[float] = []
        errors, t0 = 0, time.perf_counter()
        while True:
            errors += (await load_search(url, queries, users, 1, 5.0, False, 2, lat))["errors"]
            status = (await c.get("/admin/fit", headers=auth)).json()
            if status["state"] != "running":
                break
    during = _stats(lat, errors, time.perf_counter() - t0)
    after = await load_search(url, queries, users, 1, duration, False, 3)
    return {"before": before, "during_fit": during, "after": after, "fit": status}


async def ask_each(url: str, queries: list[str], users: list[str]) -> None:
    """Every query once, two at a time, with facets (the steady state's caches)."""
    import httpx

    rng = random.Random(1)
    todo = list(queries)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        async def worker() -> None:
            while todo:
                q = todo.pop()
                await client.get("/search", params={"q": q, "user_id": rng.choice(users), "limit": "10"})

        await asyncio.gather(worker(), worker())


def _ms(text: str) -> float:
    """A wrk duration ("812.00us", "11.51ms", "1.20s") in milliseconds."""
    for unit, scale in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 6e4)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    return float(text)


def load_search_wrk(url: str, queries: list[str], users: list[str], concurrency: int, duration: float,
                    facets: bool, seed: int, folder: Path) -> dict:
    """The same closed-loop run driven by wrk (C, one thread): the load client then takes far
    less of the two cores than the Python client does. Needs ``wrk`` on the PATH (Debian: ``apt-get
    install wrk``). Requests are drawn at random from 5,000 prepared (query, shopper) URLs."""
    import re
    import shutil
    from urllib.parse import urlencode

    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("--client wrk: no wrk on the PATH (Debian: apt-get install wrk)")
    rng = random.Random(seed)
    paths = ["/search?" + urlencode({"q": rng.choice(queries), "user_id": rng.choice(users), "personalize": "true",
                                     "facets": str(facets).lower(), "limit": "10"}) for _ in range(5000)]
    script = folder / f"bench_serve_wrk_{seed}.lua"
    script.write_text("math.randomseed(%d)\npaths = {\n%s\n}\nrequest = function()\n"
                      "  return wrk.format(\"GET\", paths[math.random(#paths)])\nend\n"
                      % (seed, ",\n".join(json.dumps(p) for p in paths)))
    out = subprocess.run([exe, "-t1", f"-c{concurrency}", f"-d{int(round(duration))}s", "--latency", "-s",
                          str(script), url], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    n, secs = re.search(r"(\d+) requests in ([\d.]+\w+)", out).groups()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    seconds = _ms(secs) / 1000
    return {"requests": int(n) - errors, "errors": errors, "seconds": round(seconds, 2),
            "rps": round((int(n) - errors) / seconds, 1), "p50_ms": round(_ms(pct["50"]), 2),
            "p90_ms": round(_ms(pct["90"]), 2), "p99_ms": round(_ms(pct["99"]), 2), "client": "wrk"}


async def load_events(url: str, key: str, pids: list[str], users: list[str], total: int, batch: int,
                      concurrency: int, tag: str) -> tuple[dict, list[str]]:
    import httpx

    acked: list[str] = []
    lat: list[float] = []
    errors = 0
    n_batches = total // batch
    queue: asyncio.Queue[int] = asyncio.Queue()
    for b in range(n_batches):
        queue.put_nowait(b)
    rng = random.Random(1)
    evs = ("impression",) * 8 + ("click", "add_to_cart")

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            b = queue.get_nowait()
            ids = [f"{tag}-{b}-{i}" for i in range(batch)]
            body = [{"user_id": rng.choice(users), "product_id": rng.choice(pids), "event": rng.choice(evs),
                     "request_id": rid, "position": i % 20 + 1} for i, rid in enumerate(ids)]
            t = time.perf_counter()
            try:
                r = await client.post("/events", json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                lat.append(time.perf_counter() - t)
                acked.extend(ids)
            else:
                errors += 1

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    secs = time.perf_counter() - start
    stats = _stats(lat, errors, secs)
    stats.update({"batch": batch, "events_acked": len(acked), "events_per_s": round(len(acked) / secs, 1)})
    return stats, acked


def in_process(home: Path, queries: list[str], users: list[str], rounds: int = 3, n: int = 400) -> list[dict]:
    """``Engine.search`` timed in this process, no HTTP: 300 of the shop's queries
    (asked once first, so the query vectors and the query caches are warm), then
    ``n`` personalized and ``n`` anonymous searches per round, each a random query
    of those 300 and a random shopper."""
    from vitrine.engine import Engine

    engine = Engine.load(home)
    rng = random.Random(0)
    pool = rng.sample(queries, min(300, len(queries)))
    for q in pool:
        engine.search(q, k=10)
    out = []
    for _ in range(rounds):
        row = {}
        for name, user in (("personalized_ms", lambda: rng.choice(users)), ("anonymous_ms", lambda: None)):
            t = time.perf_counter()
            for _ in range(n):
                engine.search(rng.choice(pool), user_id=user(), k=10)
            row[name] = round((time.perf_counter() - t) / n * 1000, 2)
        out.append(row)
    engine.close()
    return out


def served_log_size(home: Path) -> dict | None:
    """Rows in the home's served-feature log and the space they use (after a checkpoint)."""
    import duckdb

    from vitrine.data import served_log
    from vitrine.data.store import served_path

    path = served_path(home / "store.duckdb")
    if not path.exists():
        return None
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        table = served_log.ROWS if served_log.ROWS in tables else "served"  # the JSON layout before it
        rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        used = con.execute("SELECT used_blocks * block_size FROM pragma_database_size()").fetchall()[0][0]
    finally:
        con.close()
    return {"rows": int(rows), "used_mib": round(used / 2**20, 1), "file_mib": round(path.stat().st_size / 2**20, 1),
            "kb_per_row": round(used / 1024 / max(rows, 1), 2)}


def erase_timing(home: Path, users: list[str], n: int) -> dict:
    """``Engine.forget_user`` for each of ``users[:n]`` on copies of ``home`` (``home`` is not changed):
    as it is (store, memory and every saved model) and, side by side, without the saved models (before)."""
    import shutil
    import tempfile

    from vitrine.engine import Engine

    out: dict = {"users": n}
    for mode in ("with_saved_models", "memory_and_store_only"):
        with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
            copy = Path(tmp) / "home"
            shutil.copytree(home, copy)
            engine = Engine.load(copy)
            if mode == "memory_and_store_only":
                engine._erase_saved = lambda key: 0
            secs, rows = [], []
            for raw in users[:n]:
                t = time.perf_counter()
                rows.append(engine.forget_user(raw))
                secs.append(time.perf_counter() - t)
            engine.close()
        out[mode] = {"mean_s": round(float(np.mean(secs)), 3), "max_s": round(float(np.max(secs)), 3),
                     "each_s": [round(x, 3) for x in secs], "rows_removed": rows}
    out["ratio"] = round(out["with_saved_models"]["mean_s"] / out["memory_and_store_only"]["mean_s"], 2)
    return out


def upsert_timing(home: Path, n: int) -> dict:
    """On a copy of ``home``: ``Engine.upsert_products`` of ``n`` existing products (retitled), one call each,
    then ``n`` deletes, then ``Engine.load`` (which applies those 2n changes) against a load with none."""
    import shutil
    import tempfile

    from vitrine.data.store import utc_now
    from vitrine.engine import Engine

    with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
        copy = Path(tmp) / "home"
        shutil.copytree(home, copy)
        meta_path = copy / "models" / (copy / "CURRENT").read_text().strip() / "engine.json"
        meta = json.loads(meta_path.read_text())
        stamped = meta.get("fitted_at") is None
        if stamped:  # saved before fits recorded when they began (no catch-up): as if it began now
            meta["fitted_at"] = str(utc_now())
            meta_path.write_text(json.dumps(meta))
        Engine.load(copy).close()  # the first load in a process also pays imports and model warm-up
        t = time.perf_counter()
        engine = Engine.load(copy)
        load_before = time.perf_counter() - t
        ids = [str(x) for x in engine.catalog_.ids[:n]]
        secs = []
        for pid in ids:
            rec = engine.product(pid)
            t = time.perf_counter()
            engine.upsert_products([{**rec, "title": f"{rec.get('title') or ''} v2"}])
            secs.append(time.perf_counter() - t)
        t = time.perf_counter()
        for pid in engine.catalog_.ids[n: 2 * n]:
            engine.delete_product(str(pid))
        delete_s = (time.perf_counter() - t) / n
        engine.close()
        t = time.perf_counter()
        engine = Engine.load(copy)
        load_after = time.perf_counter() - t
        assert engine.product(ids[0])["title"].endswith(" v2")
        engine.close()
    return {"products": len(engine.catalog_), "upserts": n, "upsert_mean_s": round(float(np.mean(secs)), 3),
            "upsert_max_s": round(float(np.max(secs)), 3), "delete_mean_s": round(delete_s, 4),
            "load_s": round(load_before, 2), "load_with_changes_s": round(load_after, 2),
            "fitted_at_stamped": stamped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--products", type=int, default=20000)
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--home", type=Path, help="an existing fitted home (skips synth and fit)")
    ap.add_argument("--shop", type=Path, help="the shop folder of --home (for queries and shopper ids)")
    ap.add_argument("--base", type=Path, default=ROOT / ".bench")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per search run")
    ap.add_argument("--concurrency", default="1,8", help="search connections, comma-separated runs")
    ap.add_argument("--events", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ingest-concurrency", type=int, default=2)
    ap.add_argument("--client", choices=("httpx", "wrk"), default="httpx",
                    help="search load client: the Python asyncio one, or wrk (lighter on the shared cores)")
    ap.add_argument("--in-process", action="store_true",
                    help="time Engine.search in this process instead (no server; VITRINE_* settings apply)")
    ap.add_argument("--warm", action="store_true",
                    help="ask every query once (with facets) before the timed runs: steady state, where the "
                         "query caches hold what fits, instead of runs that also fill them")
    ap.add_argument("--query-mix", choices=("uniform", "logged"), default="uniform",
                    help="draw each search's query uniformly from the distinct queries (every query as "
                         "likely as any: the caches' worst case), or as often as the shop's log asks it")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--skip-ingest", action="store_true", help="search runs only (the home's store is not written)")
    ap.add_argument("--refit", action="store_true",
                    help="instead of the load runs: searches before, during and after POST /admin/fit")
    ap.add_argument("--upserts", type=int, default=0, metavar="N",
                    help="instead: time N live upserts and deletes and the reload that applies them, on a copy of --home")
    ap.add_argument("--erase", type=int, default=0, metavar="N",
                    help="instead: time Engine.forget_user for the shop's N most active shoppers on copies of --home")
    args = ap.parse_args()

    import pandas as pd

    from vitrine.serve.keys import KeyStore

    if args.home:
        home, shop = args.home, args.shop
    else:
        shop, home = build_home(args.products, args.users, args.seed, args.base)
    if args.upserts:
        print(json.dumps(upsert_timing(home, args.upserts)))
        return
    queries, users, pids = ["shoes", "bag", "red dress", "lamp", "jacket"], [f"bench-u{i}" for i in range(200)], []
    logged: list[str] = []  # one entry per logged result page: drawing from it follows the log's query mix
    if shop is not None and (shop / "events.parquet").exists():
        ev = pd.read_parquet(shop / "events.parquet", columns=["user_id", "product_id", "query", "request_id"])
        queries = ev["query"].dropna().unique().tolist() or queries
        users = ev["user_id"].unique().tolist()
        pids = ev["product_id"].unique().tolist()
        logged = ev.dropna(subset=["query"]).drop_duplicates("request_id")["query"].tolist()
    if shop is not None and (shop / "judgments.parquet").exists():
        queries = sorted(set(queries) | set(pd.read_parquet(shop / "judgments.parquet")["query"].unique()))
    draw = logged if args.query_mix == "logged" and logged else queries
    if not pids:
        pids = pd.read_parquet(shop / "products.parquet", columns=["product_id"])["product_id"].tolist()
    if args.erase:
        active = pd.read_parquet(shop / "events.parquet", columns=["user_id"])["user_id"].value_counts().index
        print(json.dumps(erase_timing(home, active.tolist(), args.erase)))
        return
    if args.in_process:
        for row in in_process(home, queries, users):
            print(json.dumps(row))
        return
    key = KeyStore(home).create("bench")
    args.base.mkdir(parents=True, exist_ok=True)
    server = Server(home, args.base / "bench_serve_server.log")
    tag = f"bench{int(time.time())}"
    report: dict = {"shop": {"products": args.products if not args.home else None, "users": len(users),
                             "queries": len(queries), "home": str(home)},
                    "cpus": os.cpu_count(), "query_mix": args.query_mix if draw is logged else "uniform",
                    "warm": args.warm, "search": [], "ingest": None}
    try:
        t = time.time()
        server.wait()
        report["startup_s"] = round(time.time() - t, 1)
        import httpx

        report["shop"]["products"] = httpx.get(server.url + "/health").json()["products"]
        asyncio.run(load_search(server.url, queries, users, 2, 3.0, True, 0))  # warm-up
        if args.warm:
            t = time.time()
            asyncio.run(ask_each(server.url, queries, users))
            report["warm_s"] = round(time.time() - t, 1)
        if args.refit:
            report["refit"] = asyncio.run(refit_run(server.url, key, draw, users, args.duration))
            print(json.dumps(report["refit"]), file=sys.stderr)
        for c in [int(x) for x in args.concurrency.split(",")] if not args.refit else []:
            for facets in (True, False):
                load_before = os.getloadavg()[0]
                if args.client == "wrk":
                    s = load_search_wrk(server.url, draw, users, c, args.duration, facets, c, args.base)
                else:
                    s = asyncio.run(load_search(server.url, draw, users, c, args.duration, facets, c))
                # Other work on the machine shares the cores with the server and this client.
                s.update({"concurrency": c, "facets": facets,
                          "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]})
                report["search"].append(s)
                print(json.dumps(s), file=sys.stderr)
        if not args.skip_ingest and not args.refit:
            stats, acked = asyncio.run(load_events(server.url, key, pids, users, args.events, args.batch,
                                                   args.ingest_concurrency, tag))
            report["ingest"] = stats
    finally:
        server.stop()
        KeyStore(home).revoke("bench")
    if report["ingest"] is not None:
        import duckdb

        con = duckdb.connect(str(home / "store.duckdb"), read_only=True)
        stored = con.execute("SELECT count(*) FROM events WHERE request_id LIKE ?", [tag + "-%"]).fetchone()[0]
        con.close()
        report["ingest"]["events_stored"] = int(stored)
        report["ingest"]["lost"] = len(set(acked)) - int(stored) if stored <= len(acked) else 0

    report["served_log"] = log = served_log_size(home)
    if log is not None:
        print(f"served log: {log['rows']} rows, {log['used_mib']} MiB used ({log['kb_per_row']} kB a row), "
              f"file {log['file_mib']} MiB", file=sys.stderr)
    print(f"\nshop: {report['shop']['products']} products, {report['shop']['users']} shoppers, "
          f"{report['shop']['queries']} queries ({report['query_mix']} mix{', caches warmed' if args.warm else ''}); "
          f"{report['cpus']} CPUs; server start {report.get('startup_s')} s\n")
    print("| run | conn | facets | req | errors | req/s | p50 ms | p90 ms | p99 ms | load before, after |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for s in report["search"]:
        print(f"| /search personalized | {s['concurrency']} | {s['facets']} | {s['requests']} | {s['errors']} | "
              f"{s['rps']} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | "
              f"{s['load_1min'][0]}, {s['load_1min'][1]} |")
    if report.get("refit"):
        r = report["refit"]
        print(f"\nPOST /admin/fit: {r['fit']['state']} in {r['fit'].get('seconds')} s "
              f"({r['fit'].get('previous_version')} -> {r['fit'].get('model_version')})\n")
        print("| searches, 1 connection | req | errors | req/s | p50 ms | p90 ms | p99 ms | max ms |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name in ("before", "during_fit", "after"):
            x = r[name]
            print(f"| {name} | {x['requests']} | {x['errors']} | {x['rps']} | {x['p50_ms']} | {x['p90_ms']} | "
                  f"{x['p99_ms']} | {x['max_ms']} |")
    i = report["ingest"]
    if i is None:
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
        return
    print(f"\n| ingest | batch | conn | events acked | stored | lost | events/s | errors | p50 ms/batch | p99 ms/batch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| POST /events | {i['batch']} | {args.ingest_concurrency} | {i['events_acked']} | {i['events_stored']} | "
          f"{i['lost']} | {i['events_per_s']} | {i['errors']} | {i['p50_ms']} | {i['p99_ms']} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
