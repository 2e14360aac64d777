"""The saved model versions of a home: list them, choose the one that serves, prune old ones.

A home keeps each fit in ``models/<version>/`` and names the serving one in
``CURRENT``. Every change here is a rename or a whole-file replace, so a
reader sees the old state or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

from vitrine.errors import NotFoundError, VitrineError

MODELS_DIR = "models"
CURRENT_FILE = "CURRENT"

_LOCKS: dict[Path, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()


def models_lock(home: Path) -> threading.RLock:
    """One lock per home for changing its saved versions in this process.

    A refit in the service saves (and prunes old versions) while an erasure
    rewrites every version; neither may pull a folder from under the other.
    Other processes cannot write the home meanwhile: they need its store.
    """
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(Path(home).resolve(), threading.RLock())


def current_version(home: Path) -> str | None:
    path = Path(home) / CURRENT_FILE
    return path.read_text().strip() if path.exists() else None


def version_names(home: Path) -> list[str]:
    """Saved versions, oldest fit first.

    By when each fit began, not by name: a fit names its folder by the time
    it saved (``%Y%m%d-%H%M%S``), but a copied or renamed folder
    (``reloaded-v2``) keeps its fit's age. Versions saved before fits
    recorded their start come first, by name.
    """
    models = Path(home) / MODELS_DIR
    if not models.is_dir():
        return []
    names = [f.name for f in models.iterdir() if not f.name.startswith(".") and (f / "engine.json").exists()]
    return sorted(names, key=lambda name: (_meta(home, name).get("fitted_at") or "", name))


def _meta(home: Path, name: str) -> dict:
    return json.loads((Path(home) / MODELS_DIR / name / "engine.json").read_text())


def list_versions(home: Path) -> list[dict]:
    """Each saved version: name, whether it serves, when its fit began, its data's last event, size."""
    home = Path(home)
    current = current_version(home)
    out = []
    for name in version_names(home):
        folder = home / MODELS_DIR / name
        meta = _meta(home, name)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        out.append({"version": name, "current": name == current, "fitted_at": meta.get("fitted_at"),
                    "fitted_through": meta.get("fitted_through"), "vitrine": meta.get("vitrine"),
                    "megabytes": round(size / 2**20, 1)})
    return out


def set_current(home: Path, version: str) -> None:
    """Make a saved version the one a load (a restart, ``POST /admin/reload``) serves."""
    home = Path(home)
    if version not in version_names(home):
        known = ", ".join(version_names(home)) or "none"
        raise NotFoundError(f"{home}: no saved model version {version!r} (saved: {known})")
    pointer = home / f".{CURRENT_FILE}.tmp-{os.getpid()}-{threading.get_ident()}"
    pointer.write_text(version)
    os.replace(pointer, home / CURRENT_FILE)


def prune(home: Path, keep: int) -> list[str]:
    """Remove all but the newest ``keep`` versions and the current one; return those removed.

    A removed folder is first renamed to a hidden name, so a reader never
    sees half of one. Call under :func:`models_lock`.
    """
    if keep < 1:
        raise VitrineError(f"keep at least one saved model, got {keep}")
    home = Path(home)
    names = version_names(home)
    kept = set(names[-keep:]) | {current_version(home)}
    gone = [name for name in names if name not in kept]
    for name in gone:
        hidden = home / MODELS_DIR / f".{name}.removed-{os.getpid()}"
        os.replace(home / MODELS_DIR / name, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
    return gone


def fit_times(home: Path) -> list[str | None]:
    """When each saved version's fit began (None for one saved before fits recorded it)."""
    return [_meta(home, name).get("fitted_at") for name in version_names(home)]
