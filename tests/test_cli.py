"""The `vitrine` command line end to end: synth -> ingest -> fit -> evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitrine.cli import app

runner = CliRunner()


def _vitrine(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vitrine.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_synth_ingest_fit_search_pipeline(tmp_path: Path) -> None:
    shop, home = tmp_path / "shop", tmp_path / "home"
    r = runner.invoke(app, ["synth", str(shop), "--products", "150", "--users", "40", "--seed", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(shop), "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["store"]["products"] == 150
    r = runner.invoke(app, ["fit", "--home", str(home)])
    assert r.exit_code == 0, r.output
    assert (home / "CURRENT").exists()


@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory) -> Path:
    from vitrine.data.synth import generate

    out = tmp_path_factory.mktemp("tiny") / "shop"
    generate(out, products=200, users=60, seed=4)
    return out


def test_evaluate_search_json_contract(tiny_shop: Path, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    shop = tmp_path / "shop"
    shutil.copytree(tiny_shop, shop)
    j = pd.read_parquet(shop / "judgments.parquet")
    bad = j.iloc[:1].assign(product_id="no-such-product")
    pd.concat([j, bad]).to_parquet(shop / "judgments.parquet")
    r = runner.invoke(app, ["evaluate", "search", str(shop), "--protocol", "rerank", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    # the skipped judgment is reported, in the JSON and on stderr, not dropped silently
    assert any("judgments" in w and "not in the catalog" in w for w in out["extra"]["input_warnings"])
    assert "warning: judgments" in r.stderr
    assert {"dataset", "task", "protocol", "k", "metrics", "baselines", "seconds"} <= set(out)
    assert out["task"] == "search" and out["protocol"] == "rerank" and out["k"] == 10
    assert {"ndcg@10", "hr@10", "mrr@10", "precision@10", "recall@10"} <= set(out["metrics"])
    assert "bm25" in out["baselines"]
    assert 0.0 <= out["metrics"]["ndcg@10"] <= 1.0


def test_evaluate_recommend_json_contract(tiny_shop: Path) -> None:
    r = runner.invoke(app, ["evaluate", "recommend", str(tiny_shop), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["task"] == "recommend"
    assert "popularity" in out["baselines"]
    assert out["metrics"]["hr@10"] >= 0.0


def test_bad_input_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "products.csv").write_text("product_id,price\np1,3\np2,-3.5\n")
    r = _vitrine("ingest", str(bad), "--home", str(tmp_path / "home"))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "products.csv row 2, field 'price': expected >= 0, got -3.5" in r.stderr
    r = _vitrine("evaluate", "search", str(tmp_path / "missing"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = _vitrine("fit", "--home", str(tmp_path / "empty-home"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
