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
    _serve_from_the_command_line(shop, home)


def _last_json(r) -> dict:
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout.strip().splitlines()[-1])


def _serve_from_the_command_line(shop: Path, home: Path) -> None:
    """search, recommend, similar, events and forget on a fitted home, as the API answers them."""
    import pandas as pd

    h = ["--home", str(home)]
    products = pd.read_parquet(shop / "products.parquet")
    ids = set(products["product_id"])
    out = _last_json(runner.invoke(app, ["search", "red", *h, "--k", "5", "--explain", "--json"]))
    assert len(out["items"]) == 5 and {i["product_id"] for i in out["items"]} <= ids
    assert [i["position"] for i in out["items"]] == [1, 2, 3, 4, 5] and out["items"][0]["explanation"]["text"] != 0
    r = runner.invoke(app, ["search", "red", *h, "--k", "3"])
    assert r.exit_code == 0 and [line.split()[0] for line in r.stdout.strip().splitlines()] == ["1", "2", "3"]
    photo = shop / products["image"].dropna().iat[0]
    assert len(_last_json(runner.invoke(app, ["search", "--image", str(photo), *h, "--json"]))["items"]) == 10

    pid = products["product_id"].iat[0]
    similar = _last_json(runner.invoke(app, ["similar", pid, *h, "--k", "4", "--json"]))["items"]
    assert len(similar) == 4 and pid not in {i["product_id"] for i in similar}

    stranger = [i["product_id"] for i in _last_json(runner.invoke(app, ["recommend", "cli-newcomer", *h, "--json"]))["items"]]
    sizes = products["category"].value_counts()
    leaf = sizes[sizes >= 3].index[-1]  # a small category, unlike the popular list
    picks = products.loc[products["category"] == leaf, "product_id"].iloc[:3].tolist()
    pd.DataFrame({"user_id": "cli-newcomer", "product_id": picks, "event": "purchase"}).to_csv(
        home.parent / "events.csv", index=False)
    assert _last_json(runner.invoke(app, ["events", str(home.parent / "events.csv"), *h]))["recorded"] == 3
    after = [i["product_id"] for i in _last_json(runner.invoke(app, ["recommend", "cli-newcomer", *h, "--json"]))["items"]]
    assert after != stranger and not set(picks) & set(after)  # read at once; bought ones are not offered again

    bad = home.parent / "bad.jsonl"
    bad.write_text('{"user_id": "x", "product_id": "%s", "event": "click"}\n'
                   '{"user_id": "x", "product_id": "%s", "event": "teleport"}\n' % (pid, pid))
    r = runner.invoke(app, ["events", str(bad), *h])
    assert r.exit_code == 1 and "bad.jsonl row 2, field 'event'" in r.output and "Traceback" not in r.output
    out = _last_json(runner.invoke(app, ["forget", "cli-newcomer", *h]))
    assert out == {"erased": True, "removed_rows": 4}  # the three events and the shopper's row; nothing from bad.jsonl
    again = [i["product_id"] for i in _last_json(runner.invoke(app, ["recommend", "cli-newcomer", *h, "--json"]))["items"]]
    assert again == stranger
    r = runner.invoke(app, ["forget", "cli-newcomer", "--home", str(home.parent / "no-such-home")])
    assert r.exit_code == 1 and "no such home" in r.output

    # Another process (a running `vitrine serve`) holds the store: writes say so, reads use the saved model.
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(120)", str(home / "store.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = runner.invoke(app, ["forget", "cli-newcomer", *h])
        assert r.exit_code == 1 and "in use by another process" in r.output and "Traceback" not in r.output
        r = runner.invoke(app, ["search", "red", *h, "--k", "3", "--json"])
        assert "store is in use by another process" in r.stderr
        assert len(_last_json(r)["items"]) == 3
        _choose_saved_models(home)  # beside a running service too: it needs no store
    finally:
        holder.kill()
        holder.wait()


def _choose_saved_models(home: Path) -> None:
    import shutil

    h = ["--home", str(home)]
    (fitted,) = _last_json(runner.invoke(app, ["models", "list", *h, "--json"]))
    assert fitted["current"] and fitted["megabytes"] > 0 and fitted["fitted_at"]
    shutil.copytree(home / "models" / fitted["version"], home / "models" / "20000101-000000")
    listed = _last_json(runner.invoke(app, ["models", "list", *h, "--json"]))
    assert [(m["version"], m["current"]) for m in listed] == [("20000101-000000", False), (fitted["version"], True)]
    out = _last_json(runner.invoke(app, ["models", "use", "20000101-000000", *h]))
    assert out == {"current": "20000101-000000", "previous": fitted["version"]}
    assert (home / "CURRENT").read_text() == "20000101-000000"
    r = runner.invoke(app, ["models", "use", "19990101-000000", *h])
    assert r.exit_code == 1 and "no saved model version '19990101-000000'" in r.output and "Traceback" not in r.output
    assert (home / "CURRENT").read_text() == "20000101-000000"
    r = runner.invoke(app, ["models", "list", *h])
    assert r.exit_code == 0 and r.stdout.splitlines()[0].startswith("* 20000101-000000")
    _last_json(runner.invoke(app, ["models", "use", fitted["version"], *h]))


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
