"""The storefront page (plain HTML and JS, no build step)."""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from vitrine.serve.deps import StateDep
from vitrine.version import __version__

router = APIRouter(include_in_schema=False)
TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "index.html"


@lru_cache(maxsize=1)
def _template() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse)
def storefront(state: StateDep) -> HTMLResponse:
    """The storefront page."""
    page = (_template()
            .replace("{{version}}", html.escape(__version__))
            .replace("{{open_reads}}", "true" if state.settings.open_reads else "false"))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
