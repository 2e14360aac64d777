"""`vitrine …`: the command line (a stable contract used by outside checks).

Bad input ends with a one-paragraph message on stderr and exit code 1,
never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer

from vitrine.errors import VitrineError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multimodal, personalized product search.")
evaluate_app = typer.Typer(no_args_is_help=True, help="Offline evaluation (see ARCHITECTURE.md).")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the HTTP service.")
models_app = typer.Typer(no_args_is_help=True, help="Saved model versions: list them, choose the one that serves.")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(keys_app, name="keys")
app.add_typer(models_app, name="models")

HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="vitrine home folder (default: $VITRINE_HOME, then ./.vitrine)"),
]


ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (in-process) or ray")]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="Ray cluster address (default: start a local one)")
]


def resolve_home(home: Path | None) -> Path:
    return home or Path(os.environ.get("VITRINE_HOME") or ".vitrine")


def _err(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


def _store_in_use(exc: Exception) -> bool:
    """DuckDB lets one process write a database: another one (a running `vitrine serve`) holds it."""
    import duckdb

    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


def friendly(fn):
    """Turn the errors a user can cause into a message and exit code 1."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (VitrineError, ValueError, FileNotFoundError, PermissionError) as exc:
            _err(str(exc))
            raise typer.Exit(1) from None
        except Exception as exc:
            if not _store_in_use(exc):
                raise
            _err("the home's store is in use by another process (a running `vitrine serve`?): use its HTTP API "
                 "(POST /events, DELETE /users/{id}, POST /admin/fit), or stop it first. "
                 f"{str(exc).splitlines()[0]}")
            raise typer.Exit(1) from None

    return wrapper


@app.command()
@friendly
def synth(
    out: Annotated[Path, typer.Argument(help="folder to write the shop to")],
    products: Annotated[int, typer.Option(help="number of products")] = 2000,
    users: Annotated[int, typer.Option(help="number of shoppers")] = 500,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    lang: Annotated[str, typer.Option(help="en or zh")] = "en",
    sessions: Annotated[float, typer.Option(help="sessions per shopper")] = 8.0,
) -> None:
    """Generate a synthetic marketplace with hidden ground truth."""
    from vitrine.data.synth import generate

    if lang not in ("en", "zh"):
        raise ValueError(f"--lang must be 'en' or 'zh', got {lang!r}")
    summary = generate(out, products=products, users=users, seed=seed, lang=lang,
                       sessions_per_user=sessions, progress=True)
    counts = {k: v for k, v in vars(summary).items() if isinstance(v, int | float)}
    typer.echo(json.dumps({"path": str(summary.path), **counts}))


@app.command()
@friendly
def ingest(
    dataset: Annotated[Path, typer.Argument(help="dataset folder")],
    home: HomeOpt = None,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Validate a dataset folder and load it into the home's store (one transaction)."""
    from vitrine.engine import Engine

    engine = Engine(home=resolve_home(home))
    if executor == "local":
        ds = engine.ingest(dataset)
    else:
        from vitrine.scale.executor import get_executor
        from vitrine.scale.pipelines import ingest as sharded_ingest

        ex = get_executor(executor, address=ray_address)
        try:
            ds = sharded_ingest(engine.store, dataset, ex)
        finally:
            ex.shutdown()
    for w in ds.warnings:
        typer.echo(f"warning: {w}", err=True)
    counts = engine.store.counts()
    typer.echo(json.dumps({"ingested": dataset.name, "warnings": sum(w.count for w in ds.warnings), "store": counts}))
    engine.close()


@app.command()
@friendly
def fit(home: HomeOpt = None) -> None:
    """Fit every model on what the home's store holds and save it."""
    from vitrine.engine import Engine

    engine = Engine(home=resolve_home(home))
    engine.fit(None, progress=True)
    path = engine.save()
    typer.echo(json.dumps({"model": str(path), "products": len(engine.catalog_)}))
    engine.close()


@app.command("recommend-all")
@friendly
def recommend_all(
    out: Annotated[Path, typer.Argument(help="Parquet file to write (user_id key, rank, product_id, score)")],
    home: HomeOpt = None,
    k: Annotated[int, typer.Option(help="recommendations per shopper")] = 10,
    executor: ExecutorOpt = "local",
    ray_address: RayAddressOpt = None,
) -> None:
    """Precompute every stored shopper's recommendations (batch job; Ray shards it)."""
    from vitrine.engine import Engine
    from vitrine.scale.executor import get_executor
    from vitrine.scale.pipelines import recommend_all as run

    engine = Engine.load(resolve_home(home))
    ex = get_executor(executor, address=ray_address)
    try:
        recs = run(engine, ex, k=k)
    finally:
        ex.shutdown()
    recs.to_parquet(out, index=False)
    typer.echo(json.dumps({"users": int(recs["user_id"].nunique()), "rows": len(recs), "out": str(out)}))
    engine.close()


@app.command()
@friendly
def serve(
    home: HomeOpt = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn workers")] = 1,
) -> None:
    """Serve the HTTP API and the storefront page."""
    import uvicorn

    from vitrine.serve.app import create_app

    app_ = create_app(home=resolve_home(home))
    typer.echo(f"vitrine serving {resolve_home(home)} on http://{host}:{port}", err=True)
    uvicorn.run(app_, host=host, port=port, workers=workers, log_level="warning")


JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object (the API's result items)")]
KOpt = Annotated[int, typer.Option("--k", min=1, help="how many results")]


def _load_for_reading(home: Path | None):
    """The home's saved model with what the store holds since its fit; the model alone, with a
    warning, when another process (a running `vitrine serve`) has the store."""
    from vitrine.engine import Engine

    try:
        return Engine.load(resolve_home(home))
    except Exception as exc:
        if not _store_in_use(exc):
            raise
    typer.echo("warning: the home's store is in use by another process (a running `vitrine serve`?); answering "
               "from the saved model alone, without the events and catalog changes recorded since its fit", err=True)
    return Engine.load(resolve_home(home), replay=False)


def _answer(home: Path | None, as_json: bool, head: dict, ask) -> None:
    """Load the home for reading, print ``ask(engine)``'s results as the API shows them."""
    engine = _load_for_reading(home)
    try:
        _show(engine, ask(engine), as_json, head)
    finally:
        engine.close()


def _show(engine, res, as_json: bool, head: dict) -> None:
    """Results as the API shows them: one JSON object, or a line per product."""
    from vitrine.serve.present import items

    rows = items(engine, res.item_ids, res.scores, res.explanations)
    if as_json:
        typer.echo(json.dumps({**head, "items": rows}))
        return
    for r in rows:
        score = "" if r["score"] is None else f"{r['score']:10.4f}"
        line = f"{r['position']:>3}  {r['product_id']:<16} {score}  {r['title'] or ''}"
        if r["explanation"]:
            ex = r["explanation"]
            parts = sorted(((g, v) for g, v in ex.items() if v and g != "base"), key=lambda gv: -abs(gv[1]))
            parts += [("base", ex["base"])] if ex.get("base") else []
            line += "  [" + ", ".join(f"{g} {v:+.3f}" for g, v in parts) + "]"
        typer.echo(line)


@app.command()
@friendly
def search(
    query: Annotated[str | None, typer.Argument(help="text query (optional with --image)")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="a query photo: image or image + text search")] = None,
    user: Annotated[str | None, typer.Option("--user", help="shopper id: personalize for them")] = None,
    k: KOpt = 10,
    explain: Annotated[bool, typer.Option("--explain", help="break each score down by source")] = False,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """Search the fitted home's catalog as the API's /search does."""
    if not query and image is None:
        raise VitrineError("give a text query, --image PHOTO, or both")
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"{image}: no such photo")
    _answer(home, as_json, {"query": query, "image": str(image) if image else None, "user_id": user},
            lambda e: e.search(query, user_id=user, k=k, query_image=image, explain=explain))


@app.command()
@friendly
def recommend(
    user: Annotated[str, typer.Argument(help="shopper id")],
    k: KOpt = 10,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """A shopper's home-feed recommendations (popular products for a stranger)."""
    _answer(home, as_json, {"user_id": user}, lambda e: e.recommend(user, k=k))


@app.command()
@friendly
def similar(
    product: Annotated[str, typer.Argument(help="product id")],
    k: KOpt = 10,
    as_json: JsonOpt = False,
    home: HomeOpt = None,
) -> None:
    """Products like this one, by behaviour and content."""
    _answer(home, as_json, {"product_id": product}, lambda e: e.similar(product, k=k))


@app.command()
@friendly
def events(
    file: Annotated[Path, typer.Argument(help="events as .parquet, .csv or .jsonl (user_id, product_id, event, ...)")],
    home: HomeOpt = None,
) -> None:
    """Record shoppers' events in a fitted home; the next search or recommendation reads them."""
    from vitrine.data.dataset import read_file
    from vitrine.engine import Engine
    from vitrine.errors import DataValidationError, Problem

    df = read_file(file)
    engine = Engine.load(resolve_home(home))
    try:
        n = engine.record_events(df)
    except DataValidationError as exc:  # located in the table; say which file
        raise DataValidationError([Problem(file.name, p.row, p.column, p.message) for p in exc.problems]) from None
    finally:
        engine.close()
    typer.echo(json.dumps({"recorded": n, "file": str(file)}))


@app.command()
@friendly
def forget(
    user: Annotated[str, typer.Argument(help="shopper id")],
    home: HomeOpt = None,
) -> None:
    """Erase a shopper: stored events, reviews and served pages, and their profile in every saved model."""
    from vitrine.engine import Engine
    from vitrine.saved import current_version

    home_ = resolve_home(home)
    if not home_.is_dir():  # "0 rows removed" from a mistyped home would read as done
        raise VitrineError(f"{home_}: no such home")
    engine = Engine.load(home_) if current_version(home_) is not None else Engine(home=home_)
    try:
        n = engine.forget_user(user)
    finally:
        engine.close()
    typer.echo(json.dumps({"erased": True, "removed_rows": int(n)}))


def _print_report(report, as_json: bool) -> None:
    d = report.to_dict()
    for w in d.get("extra", {}).get("input_warnings", []):
        typer.echo(f"warning: {w}", err=True)
    if as_json:
        typer.echo(json.dumps(d))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{d['task']} · {d['dataset']} · {d['protocol']} · k={d['k']}")
    names = list(d["metrics"])
    table.add_column("model")
    for n in names:
        table.add_column(n, justify="right")
    table.add_row("vitrine", *[f"{d['metrics'][n]:.4f}" for n in names])
    for b, m in d["baselines"].items():
        table.add_row(b, *[f"{m.get(n, float('nan')):.4f}" for n in names])
    Console(file=sys.stdout).print(table)
    typer.echo(f"{d['seconds']} s")


@evaluate_app.command("search")
@friendly
def evaluate_search(
    dataset: Annotated[Path, typer.Argument(help="dataset folder with judgments")],
    protocol: Annotated[str, typer.Option(help="rerank, retrieve or cross-modal")] = "rerank",
    k: Annotated[int, typer.Option(help="cutoff")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on the last line")] = False,
) -> None:
    """Evaluate search on judgments against BM25 and dense-text baselines."""
    from vitrine.evaluate.search import run_search

    _print_report(run_search(dataset, protocol=protocol, k=k, progress=not as_json), as_json)


@evaluate_app.command("recommend")
@friendly
def evaluate_recommend(
    dataset: Annotated[Path, typer.Argument(help="dataset folder with events")],
    candidates: Annotated[bool, typer.Option("--candidates", help="rank only candidates + held-out")] = False,
    k: Annotated[int, typer.Option(help="cutoff")] = 10,
    max_users: Annotated[int | None, typer.Option(help="evaluate at most this many users")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object on the last line")] = False,
) -> None:
    """Evaluate recommendations leave-last-out against popularity, item-kNN and ALS."""
    from vitrine.evaluate.recommend import run_recommend

    report = run_recommend(dataset, candidates=candidates, k=k, progress=not as_json, max_users=max_users)
    _print_report(report, as_json)


@app.command()
@friendly
def report(
    dataset: Annotated[Path, typer.Argument(help="dataset folder with judgments")],
    out: Annotated[Path, typer.Option(help="folder for index.html and its plots")] = Path("vitrine-report"),
    protocol: Annotated[str, typer.Option(help="rerank, retrieve or cross-modal")] = "rerank",
) -> None:
    """Write an HTML evaluation report with plots (metric by cutoff, segments, propensities, importance)."""
    from vitrine.evaluate.report import report_for_search

    typer.echo(str(report_for_search(dataset, out, protocol=protocol)))


@keys_app.command("create")
@friendly
def keys_create(name: Annotated[str, typer.Argument(help="a label for the key")], home: HomeOpt = None) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from vitrine.serve.keys import KeyStore

    typer.echo(KeyStore(resolve_home(home)).create(name))


@models_app.command("list")
@friendly
def models_list(home: HomeOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The saved versions (a save keeps the newest VITRINE_KEEP_MODELS and the current one)."""
    from vitrine.saved import list_versions

    rows = list_versions(resolve_home(home))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        typer.echo(f"{'*' if r['current'] else ' '} {r['version']}  fitted {r['fitted_at'] or '?'}  "
                   f"data through {r['fitted_through'] or '-'}  {r['megabytes']} MB")


@models_app.command("use")
@friendly
def models_use(version: Annotated[str, typer.Argument(help="a saved version (see `vitrine models list`)")],
               home: HomeOpt = None) -> None:
    """Make a saved version the one that serves: the next load, or `POST /admin/reload` of a running service."""
    from vitrine.saved import current_version, set_current

    home_ = resolve_home(home)
    before = current_version(home_)
    set_current(home_, version)
    typer.echo(json.dumps({"current": version, "previous": before}))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
