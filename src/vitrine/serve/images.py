"""Checks on uploaded query images: type, size and decompression bombs."""

from __future__ import annotations

import io
import warnings

from fastapi import HTTPException
from PIL import Image, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
ALLOWED_TYPES = set(ALLOWED_FORMATS.values()) | {"image/jpg", "image/pjpeg", "application/octet-stream"}
MAX_PIXELS = 25_000_000  # far above any product photo, far below a decompression bomb
MAX_SIDE = 12_000


def decode_upload(data: bytes, content_type: str | None, max_bytes: int) -> Image.Image:
    """A decoded RGB image, or an HTTPException saying what is wrong with the upload.

    The declared type must be an image type; the bytes must be a JPEG, PNG,
    WebP or GIF whatever the declared type says; the pixel count is checked
    from the header before any pixel is decoded.
    """
    if content_type and content_type.split(";")[0].strip().lower() not in ALLOWED_TYPES:
        raise HTTPException(415, f"unsupported upload type {content_type!r}; send a JPEG, PNG, WebP or GIF")
    if not data:
        raise HTTPException(422, "the uploaded image is empty")
    if len(data) > max_bytes:
        raise HTTPException(413, f"the image is {len(data)} bytes; the limit is {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in ALLOWED_FORMATS:
                raise HTTPException(415, f"unsupported image format {img.format}; send a JPEG, PNG, WebP or GIF")
            w, h = img.size
            if w <= 0 or h <= 0 or w * h > MAX_PIXELS or max(w, h) > MAX_SIDE:
                raise HTTPException(413, f"the image is {w}x{h} pixels; the limit is {MAX_PIXELS} pixels "
                                         f"and {MAX_SIDE} per side")
            img.load()
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            return img.convert("RGB")
    except HTTPException:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPException(413, "the image decompresses to too many pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise HTTPException(422, f"the upload is not a readable image ({type(exc).__name__})") from None
