"""`vitrine ingest`: bad input is a message and exit code 1, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vitrine.cli import app

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def write_csv(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(folder / f"{name}.csv", index=False)


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    write_csv(tmp_path / "shop", "products", [{"product_id": f"p{i}", "title": f"item {i}", "price": i} for i in range(4)])
    write_csv(tmp_path / "shop", "events", [
        {"user_id": "u1", "product_id": "p1", "timestamp": "2024-01-01", "event": "click"},
        {"user_id": "u1", "product_id": "ghost", "timestamp": "2024-01-01", "event": "click"},
    ])
    return tmp_path / "shop"


def _last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_ingest_ok_prints_counts_and_warnings(shop, tmp_path):
    r = run("ingest", str(shop), "--home", str(tmp_path / "home"))
    assert r.exit_code == 0, r.output
    out = _last_json(r.stdout)
    assert out["store"]["products"] == 4 and out["store"]["events"] == 1 and out["warnings"] == 1
    assert "warning: events.csv, field 'product_id'" in r.stderr and "(1 rows, e.g. 2)" in r.stderr
    assert (tmp_path / "home").is_dir()


@pytest.mark.parametrize(
    "breakage, expect",
    [
        (lambda d: write_csv(d, "products", [{"product_id": "a", "price": -1}]), "products.csv row 1, field 'price'"),
        (lambda d: write_csv(d, "events", [{"user_id": "u", "product_id": "p1", "timestamp": "x", "event": "click"}]),
         "events.csv row 1, field 'timestamp'"),
        (lambda d: (d / "products.jsonl").write_text('{"product_id": "z"}\n'), "table 'products' is given twice"),
        (lambda d: (d / "products.csv").unlink() or (d / "events.csv").unlink(), "no tables found"),
    ],
)
def test_ingest_bad_input_is_a_message_and_exit_1(shop, tmp_path, breakage, expect):
    breakage(shop)
    home = tmp_path / "home"
    r = run("ingest", str(shop), "--home", str(home))
    assert r.exit_code == 1
    assert expect in r.stderr and r.stderr.startswith("error:")
    assert "Traceback" not in r.output and r.stdout == ""
    assert not isinstance(r.exception, Exception) or isinstance(r.exception, SystemExit)


def test_ingest_missing_folder(tmp_path):
    r = run("ingest", str(tmp_path / "nope"), "--home", str(tmp_path / "home"))
    assert r.exit_code == 1 and "dataset folder not found" in r.stderr and "Traceback" not in r.output


def test_failed_ingest_stores_nothing(shop, tmp_path):
    home = tmp_path / "home"
    assert run("ingest", str(shop), "--home", str(home)).exit_code == 0
    write_csv(shop, "events", [{"user_id": "u", "product_id": "p1", "timestamp": "2024-01-01", "event": "wink"}])
    assert run("ingest", str(shop), "--home", str(home)).exit_code == 1
    write_csv(shop, "events", [{"user_id": "u", "product_id": "p1", "timestamp": "2024-01-01", "event": "click"}])
    r = run("ingest", str(shop), "--home", str(home))
    assert _last_json(r.stdout)["store"] == {"products": 4, "reviews": 0, "events": 2, "users": 2, "judgments": 0}


def test_home_from_environment(shop, tmp_path, monkeypatch):
    monkeypatch.setenv("VITRINE_HOME", str(tmp_path / "envhome"))
    assert run("ingest", str(shop)).exit_code == 0
    assert (tmp_path / "envhome").is_dir()


@pytest.mark.skipif(not (SHARED / "amazon-games").is_dir(), reason="../shared/data/amazon-games is not present")
def test_ingest_amazon_games(tmp_path):
    r = run("ingest", str(SHARED / "amazon-games"), "--home", str(tmp_path / "home"))
    assert r.exit_code == 0, r.output
    out = _last_json(r.stdout)
    assert out["store"] == {"products": 16859, "reviews": 0, "events": 389718, "users": 50546, "judgments": 0}
    assert out["warnings"] == 0
