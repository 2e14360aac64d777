"""Catalog: read, upsert (searchable at once), delete; product images for the storefront."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.responses import FileResponse, RedirectResponse

from vitrine.serve import present
from vitrine.serve.deps import EngineDep, ReadKey, StateDep, WriteKey
from vitrine.serve.schemas import ErrorOut, Id, ProductIn, ProductOut

router = APIRouter(tags=["products"])

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp", ".gif": "image/gif"}
ERR = {404: {"model": ErrorOut}, 422: {"model": ErrorOut}, 503: {"model": ErrorOut}}
WERR = {**ERR, 401: {"model": ErrorOut}, 403: {"model": ErrorOut}}


def _row(engine, product_id: str) -> int:
    row = engine.catalog_.get_index(product_id)
    if row is None or not engine.catalog_.active[row]:
        raise HTTPException(404, f"product id {product_id!r} is not in the catalog")
    return row


@router.get("/products/{product_id}", response_model=ProductOut, dependencies=[ReadKey], responses=ERR)
def get_product(engine: EngineDep, state: StateDep, product_id: Annotated[Id, Path()]) -> dict:
    """Get a product by id."""
    with state.lock.read():
        _row(engine, product_id)
        return present.product_out(engine.product(product_id))


@router.put("/products/{product_id}", response_model=ProductOut, dependencies=[WriteKey], responses=WERR)
def put_product(engine: EngineDep, state: StateDep, product_id: Annotated[Id, Path()], product: ProductIn) -> dict:
    """Add or replace a product; it is searchable when this returns."""
    rec = {"product_id": product_id, **product.model_dump()}
    if rec["tags"] is not None:
        rec["tags"] = "|".join(t.replace("|", " ") for t in rec["tags"])
    if rec["created_at"] is not None and rec["created_at"].tzinfo is not None:
        rec["created_at"] = rec["created_at"].astimezone(UTC).replace(tzinfo=None)
    with state.writing() as engine:
        engine.upsert_products([rec])
        state.catalog_changed()
    with state.lock.read():
        return present.product_out(engine.product(product_id))


@router.delete("/products/{product_id}", status_code=204, dependencies=[WriteKey], responses=WERR)
def delete_product(engine: EngineDep, state: StateDep, product_id: Annotated[Id, Path()]) -> Response:
    """Delete a product; it leaves results at once."""
    with state.writing() as engine:
        _row(engine, product_id)
        engine.delete_product(product_id)
        state.catalog_changed()
    return Response(status_code=204)


@router.get("/images/{product_id}", dependencies=[ReadKey], responses=ERR,
            response_class=Response, summary="Product image")
def product_image(engine: EngineDep, product_id: Annotated[Id, Path()]) -> Response:
    """Serve a product's image file (or redirect to its URL)."""
    row = _row(engine, product_id)
    path = engine.catalog_.image_path(row)
    if not path:
        raise HTTPException(404, f"product {product_id!r} has no image")
    if path.lower().startswith(("http://", "https://")):
        return RedirectResponse(path, status_code=307)
    p = FsPath(path)
    media = IMAGE_TYPES.get(p.suffix.lower())
    # only image files: a catalog path can never be used to read anything else
    if media is None or ".." in p.parts or not p.is_file():
        raise HTTPException(404, f"the image of product {product_id!r} is not available")
    return FileResponse(p, media_type=media, headers={"Cache-Control": "public, max-age=3600"})
