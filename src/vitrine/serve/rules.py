"""Merchandising rules per query (pin, boost, bury), kept in ``home/rules.json``."""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from pathlib import Path

from vitrine.engine import Rules

RULES_FILE = "rules.json"


def normalize_query(q: str | None) -> str:
    """The form a query is matched in: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", q or "").casefold().split())


class RulesStore:
    """Rules by normalised query; writes are atomic (write, then rename)."""

    def __init__(self, home: str | Path) -> None:
        self.path = Path(home) / RULES_FILE
        self._lock = threading.Lock()
        self._rules: dict[str, dict] = {}
        if self.path.exists():
            self._rules = json.loads(self.path.read_text() or "{}")

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{RULES_FILE}.tmp-{os.getpid()}-{threading.get_ident()}")
        tmp.write_text(json.dumps(self._rules, ensure_ascii=False, indent=1))
        os.replace(tmp, self.path)

    def get(self, query: str | None) -> Rules | None:
        rec = self._rules.get(normalize_query(query))
        return Rules(pin=list(rec["pin"]), boost=dict(rec["boost"]), bury=list(rec["bury"])) if rec else None

    def raw(self, query: str) -> dict | None:
        return self._rules.get(normalize_query(query))

    def all(self) -> dict[str, dict]:
        return dict(self._rules)

    def put(self, query: str, pin: list[str], boost: dict[str, float], bury: list[str]) -> dict:
        rec = {"pin": list(pin), "boost": dict(boost), "bury": list(bury)}
        with self._lock:
            self._rules = {**self._rules, normalize_query(query): rec}
            self._save()
        return rec

    def delete(self, query: str) -> bool:
        key = normalize_query(query)
        with self._lock:
            if key not in self._rules:
                return False
            self._rules = {k: v for k, v in self._rules.items() if k != key}
            self._save()
        return True
