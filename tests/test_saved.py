"""The saved versions of a home, on folders written here (no fit needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitrine import saved
from vitrine.errors import NotFoundError, VitrineError


def _version(home: Path, name: str, fitted_at: str | None) -> None:
    folder = home / saved.MODELS_DIR / name
    folder.mkdir(parents=True)
    meta = {"version": name} if fitted_at is None else {"version": name, "fitted_at": fitted_at}
    (folder / "engine.json").write_text(json.dumps(meta))


def test_versions_are_ordered_by_when_their_fit_began_not_by_name(tmp_path) -> None:
    _version(tmp_path, "20260101-000000", "2026-01-01 00:00:00")
    _version(tmp_path, "reloaded-v2", "2025-06-01 00:00:00")  # a renamed copy of an older fit
    _version(tmp_path, "20260301-000000", "2026-03-01 00:00:00")
    _version(tmp_path, "zz-before-fit-times", None)
    (tmp_path / saved.MODELS_DIR / ".20260401-000000.tmp-1").mkdir()  # a save in progress
    assert saved.version_names(tmp_path) == [
        "zz-before-fit-times", "reloaded-v2", "20260101-000000", "20260301-000000"]


def test_prune_keeps_the_newest_fits_and_the_current_one(tmp_path) -> None:
    _version(tmp_path, "20260101-000000", "2026-01-01 00:00:00")
    _version(tmp_path, "reloaded-v2", "2025-06-01 00:00:00")
    _version(tmp_path, "20260201-000000", "2026-02-01 00:00:00")
    _version(tmp_path, "20260301-000000", "2026-03-01 00:00:00")
    saved.set_current(tmp_path, "20260101-000000")
    with pytest.raises(VitrineError):
        saved.prune(tmp_path, 0)
    assert saved.prune(tmp_path, 2) == ["reloaded-v2"]
    assert saved.version_names(tmp_path) == ["20260101-000000", "20260201-000000", "20260301-000000"]
    assert not any(f.name.startswith(".") for f in (tmp_path / saved.MODELS_DIR).iterdir())
    with pytest.raises(NotFoundError, match="reloaded-v2"):
        saved.set_current(tmp_path, "reloaded-v2")
    assert saved.current_version(tmp_path) == "20260101-000000"
