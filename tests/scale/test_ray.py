"""Scale-out on a real local Ray cluster gives the same results as in-process."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray")

from vitrine.data.dataset import read_file  # noqa: E402
from vitrine.engine import Engine  # noqa: E402
from vitrine.errors import DataValidationError  # noqa: E402
from vitrine.scale.executor import LocalExecutor, RayExecutor, shard_frame  # noqa: E402
from vitrine.scale.pipelines import ingest, recommend_all, validate_sharded  # noqa: E402


@pytest.fixture(scope="module")
def ray_executor():
    ex = RayExecutor(num_cpus=2)
    yield ex
    ex.shutdown()


def test_shard_frame_covers_every_row_once() -> None:
    df = pd.DataFrame({"a": range(10)})
    parts = shard_frame(df, 3)
    assert [o for o, _ in parts] == [0, 3, 6]
    assert pd.concat([p for _, p in parts])["a"].tolist() == list(range(10))


def test_ray_validation_matches_local_and_keeps_row_numbers(ray_executor, small_shop: Path, tmp_path) -> None:
    events = read_file(small_shop / "events.parquet")
    local, lp = validate_sharded(events, "events", "events.parquet", LocalExecutor())
    remote, rp = validate_sharded(events, "events", "events.parquet", ray_executor, shards=4)
    assert not lp and not rp
    pd.testing.assert_frame_equal(local, remote)
    bad = events.copy()
    bad.loc[len(bad) - 2, "event"] = "teleport"  # in the last shard
    _, problems = validate_sharded(bad, "events", "events.parquet", ray_executor, shards=4)
    assert [p.row for p in problems] == [len(bad) - 1]
    assert "unknown event type" in problems[0].message


def test_ray_ingest_matches_local(ray_executor, small_shop: Path, tmp_path) -> None:
    ref = Engine(home=tmp_path / "local")
    ref.ingest(small_shop)
    eng = Engine(home=tmp_path / "ray")
    ingest(eng.store, small_shop, ray_executor)
    assert eng.store.counts() == ref.store.counts()
    cols = "user_id, product_id, timestamp, event, request_id, position"
    order = f"SELECT {cols} FROM events ORDER BY {cols}"
    pd.testing.assert_frame_equal(eng.store.query(order), ref.store.query(order))


def test_ray_batch_recommendations_match_in_process(ray_executor, copy_home: Path) -> None:
    eng = Engine.load(copy_home)
    users = eng.store.query("SELECT user_id FROM users ORDER BY user_id LIMIT 40")["user_id"].tolist()
    by_ray = recommend_all(eng, ray_executor, k=5, user_keys=users)
    in_process = recommend_all(eng, LocalExecutor(), k=5, user_keys=users)
    pd.testing.assert_frame_equal(by_ray, in_process)
    assert by_ray["user_id"].nunique() == 40 and (by_ray.groupby("user_id").size() == 5).all()


def test_bad_event_file_changes_nothing(ray_executor, small_shop: Path, tmp_path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    events = read_file(small_shop / "events.parquet").head(100).astype({"timestamp": str})
    events.loc[7, "timestamp"] = "not a time"
    events.to_csv(folder / "events.csv", index=False)
    eng = Engine(home=tmp_path / "home")
    with pytest.raises(DataValidationError, match="events.csv row 8, field 'timestamp'"):
        ingest(eng.store, folder, ray_executor)
    assert eng.store.counts()["events"] == 0
