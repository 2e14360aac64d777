"""API keys: created once, shown once, stored only as a hash in ``home/keys.json``.

A key looks like ``vk_<id>_<secret>``. The id (8 hex) names the key in the
file and in logs; the secret never leaves the response of ``create``. Keys are
long random strings, so one SHA-256 is enough to store them (no password
stretching needed); a lookup by digest reveals nothing about the secret.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

KEYS_FILE = "keys.json"
PREFIX = "vk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """What is stored about a key: never the key itself."""

    key_id: str
    name: str
    created: str


class KeyStore:
    """Hashed API keys of one vitrine home.

    Parameters
    ----------
    home : the vitrine home folder; keys live in ``home/keys.json``.

    The file is re-read when it changes on disk, so a key created with
    ``vitrine keys create`` works on a running server without a restart.
    """

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / KEYS_FILE
        self._lock = threading.Lock()
        self._mtime: float | None = None
        self._by_hash: dict[str, KeyInfo] = {}

    # -- file -------------------------------------------------------------------
    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        data = json.loads(self.path.read_text() or "{}")
        return list(data.get("keys", []))

    def _write(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{KEYS_FILE}.tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps({"keys": records}, indent=1))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if mtime == self._mtime:
            return
        self._by_hash = {
            r["hash"]: KeyInfo(r["key_id"], r["name"], r.get("created", "")) for r in self._read()
        }
        self._mtime = mtime

    # -- api --------------------------------------------------------------------
    def create(self, name: str) -> str:
        """Create a key labelled ``name``; return it (the only time it is shown)."""
        name = str(name).strip()
        if not name or len(name) > 100:
            raise ValueError("a key name must have 1 to 100 characters")
        key_id = secrets.token_hex(4)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self._lock:
            records = self._read()
            records.append({
                "key_id": key_id,
                "name": name,
                "hash": _hash(key),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            })
            self._write(records)
            self._mtime = None
        return key

    def verify(self, key: str | None) -> KeyInfo | None:
        """The key's record when ``key`` is a valid key, else None."""
        if not key or not key.startswith(PREFIX) or len(key) > 200:
            return None
        digest = _hash(key)
        with self._lock:
            self._refresh()
            return self._by_hash.get(digest)

    def list(self) -> list[KeyInfo]:
        with self._lock:
            self._refresh()
            return list(self._by_hash.values())

    def revoke(self, name_or_id: str) -> int:
        """Remove keys by name or id; return how many were removed."""
        with self._lock:
            records = self._read()
            kept = [r for r in records if name_or_id not in (r["name"], r["key_id"])]
            self._write(kept)
            self._mtime = None
        return len(records) - len(kept)
