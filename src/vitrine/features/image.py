"""Image encoders behind one interface: a built-in CNN tower and CLIP.

* :class:`ImageTower` is a small CNN trained during ``fit`` on the catalog
  itself to map product images into the text encoder's space (contrastive
  image-to-title alignment, InfoNCE with soft in-batch targets), so that text
  queries find products by what their photos show with no pretrained vision
  model. Training is bounded by ``max_seconds`` and ``epochs``.
* :class:`CLIPImageEncoder` wraps any CLIP-family checkpoint (local folder)
  through ``transformers``; it embeds images and texts into CLIP's joint
  space. Preprocessing is Pillow + NumPy (no processor files needed).

Both expose ``fit(images, text_vectors)``, ``encode_images(images)`` and
``encode_query(text, text_vector)``; images are uint8 arrays (n, s, s, 3) as
returned by :func:`load_images`. Reading never crashes on a bad file: a
corrupt, huge, missing or non-image file gives one warning and no vector.

Example usage::

    imgs, ok = load_images(paths, size=64)
    tower = ImageTower(max_seconds=60).fit(imgs[ok], title_vectors[ok])
    vecs = tower.encode_images(imgs[ok])        # unit norm, text space
"""

from __future__ import annotations

import io
import time
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding
MAX_BYTES = 30 * 1024 * 1024
URL_TIMEOUT = 10.0
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


class ImageWarning(UserWarning):
    """A product image could not be used (the product keeps no image vector)."""


def _read_bytes(src: str) -> bytes:
    if "://" in src:
        with urllib.request.urlopen(src, timeout=URL_TIMEOUT) as r:  # noqa: S310 - catalog URLs
            data = r.read(MAX_BYTES + 1)
    else:
        p = Path(src)
        if p.stat().st_size > MAX_BYTES:
            raise ValueError(f"file is larger than {MAX_BYTES} bytes")
        data = p.read_bytes()
    if len(data) > MAX_BYTES:
        raise ValueError(f"file is larger than {MAX_BYTES} bytes")
    return data


def to_pil(src, max_pixels: int = MAX_PIXELS):
    """Open a path, URL, bytes or PIL image as an RGB PIL image (raises on failure)."""
    from PIL import Image

    if isinstance(src, Image.Image):
        im = src
    else:
        data = bytes(src) if isinstance(src, bytes | bytearray | memoryview) else _read_bytes(str(src))
        im = Image.open(io.BytesIO(data))
    w, h = im.size
    if w * h > max_pixels:
        raise ValueError(f"image is {w}x{h} pixels, over the limit of {max_pixels}")
    return im


def square(im, size: int) -> np.ndarray:
    """Resize keeping the aspect ratio, pad to a white square; uint8 (size, size, 3)."""
    from PIL import Image

    if getattr(im, "format", None) == "JPEG":
        im.draft("RGB", (size * 2, size * 2))  # decode at reduced scale: much faster
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    w, h = im.size
    s = size / max(w, h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    im = im.resize((nw, nh), Image.BILINEAR)
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(im, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def load_image(src, size: int = 64, max_pixels: int = MAX_PIXELS, label: str | None = None) -> np.ndarray | None:
    """One image as uint8 (size, size, 3), or None with an :class:`ImageWarning`."""
    try:
        return square(to_pil(src, max_pixels), size)
    except Exception as e:  # corrupt, truncated, missing, too large, not an image, network
        warnings.warn(f"{label or 'image'}: cannot use image {str(src)[:200]!r}: {e}", ImageWarning, stacklevel=2)
        return None


def load_images(
    sources: Sequence[object | None], size: int = 64, labels: Sequence[str] | None = None, progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Load many images; returns (uint8 array (n, size, size, 3), bool mask of those read)."""
    out = np.full((len(sources), size, size, 3), 255, np.uint8)
    ok = np.zeros(len(sources), bool)
    for i, src in enumerate(tqdm(sources, desc="load images", unit="img", disable=not progress)):
        if src is None:
            continue
        arr = load_image(src, size, label=f"product {labels[i]}" if labels is not None else None)
        if arr is not None:
            out[i], ok[i] = arr, True
    return out, ok


# --------------------------------------------------------------------------- tower
def _torch():
    import torch

    return torch


def _tower_net(dim: int, width: int = 32):
    torch = _torch()
    nn = torch.nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                             nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                             nn.MaxPool2d(2))

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(2))
            self.body = nn.Sequential(block(w, 2 * w), block(2 * w, 4 * w), block(4 * w, 8 * w))
            # Global mean colour goes straight to the head: colour is what most queries ask about.
            self.head = nn.Sequential(nn.Linear(16 * w + 6, 512), nn.ReLU(inplace=True), nn.Linear(512, dim))

        def forward(self, x):
            h = self.body(self.stem(x))
            feats = torch.cat([h.mean((2, 3)), h.amax((2, 3)), x.mean((2, 3)), x.std((2, 3))], 1)
            return nn.functional.normalize(self.head(feats), dim=1)

    return Tower()


def _to_tensor(images: np.ndarray):
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(0.5).div_(0.25)


class ImageTower:
    """Small CNN trained in ``fit`` to map images into a text embedding space.

    Parameters
    ----------
    size : image side in pixels the tower sees.
    width : channels of the first layer (the network doubles it three times).
    epochs : upper bound on passes over the training images.
    max_seconds : wall-clock training budget (the bound that usually binds on CPU).
    batch_size, lr : optimiser settings.
    temperature : softmax temperature of the image-text logits.
    soft_temperature : temperature of the text-text similarities used as soft
        targets, so that products with the same description are not negatives.
    seed : random seed.
    device : "cpu", "cuda" or "auto".

    Attributes
    ----------
    net_ : the trained torch module.
    history_ : mean training loss per epoch.
    """

    name = "tower"

    def __init__(
        self,
        *,
        size: int = 64,
        width: int = 32,
        epochs: int = 30,
        max_seconds: float = 90.0,
        batch_size: int = 256,
        lr: float = 2e-3,
        temperature: float = 0.05,
        soft_temperature: float = 0.05,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.size = size
        self.width = width
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.soft_temperature = soft_temperature
        self.seed = seed
        self.device = device

    def _device(self) -> str:
        from vitrine.config import resolve_device

        return resolve_device(self.device)

    def fit(self, images: np.ndarray, text_vectors: np.ndarray, progress: bool = False) -> ImageTower:
        """Align ``images`` (n, s, s, 3) uint8 with ``text_vectors`` (n, d), row by row."""
        torch = _torch()
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        dev = self._device()
        t = torch.from_numpy(np.asarray(text_vectors, np.float32))
        t = torch.nn.functional.normalize(t, dim=1)
        self.dim_ = int(t.shape[1])
        self.net_ = _tower_net(self.dim_, self.width).to(dev)
        n = len(images)
        self.history_: list[float] = []
        if n < 2:
            self.net_.eval()
            return self
        x_all = _to_tensor(images)
        steps_per_epoch = max(1, n // self.batch_size)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        total = self.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=0.15)
        start = time.time()
        bar = tqdm(total=self.epochs, desc="image tower", unit="epoch", disable=not progress)
        bs = min(self.batch_size, n)
        for _epoch in range(self.epochs):
            self.net_.train()
            perm = rng.permutation(n)
            losses = []
            for s in range(steps_per_epoch):
                idx = torch.from_numpy(perm[s * bs: (s + 1) * bs])
                x = x_all[idx]
                if rng.random() < 0.5:
                    x = x.flip(3)
                x, ti = x.to(dev), t[idx].to(dev)
                z = self.net_(x)
                logits = z @ ti.T / self.temperature
                soft = torch.softmax(ti @ ti.T / self.soft_temperature, dim=1)
                loss = (-(soft * torch.log_softmax(logits, 1)).sum(1).mean()
                        - (soft * torch.log_softmax(logits.T, 1)).sum(1).mean()) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                if sched.last_epoch < total - 1:
                    sched.step()
                losses.append(float(loss))
                if time.time() - start > self.max_seconds:
                    break
            self.history_.append(float(np.mean(losses)))
            bar.update(1)
            if time.time() - start > self.max_seconds:
                break
        bar.close()
        self.seconds_ = time.time() - start
        self.net_.eval()
        return self

    def encode_images(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Unit-norm vectors (n, dim) in the text space for uint8 images (n, s, s, 3)."""
        torch = _torch()
        dev = self._device()
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), batch_size):
                x = _to_tensor(images[s: s + batch_size]).to(dev)
                # Average the image and its mirror: the tower was trained on both.
                z = self.net_(x) + self.net_(x.flip(3))
                out.append(torch.nn.functional.normalize(z, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim_), np.float32)

    def encode_query(self, text: str, text_vector: np.ndarray | None) -> np.ndarray | None:
        """A text query lives in the text encoder's space: its vector is the query vector."""
        return None if text_vector is None else np.asarray(text_vector, np.float32)

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        _torch().save(self.net_.state_dict(), folder / "tower.pt")
        params = {k: getattr(self, k) for k in ("size", "width", "epochs", "max_seconds", "batch_size", "lr",
                                                  "temperature", "soft_temperature", "seed", "device")}
        (folder / "image_encoder.json").write_text(json.dumps({"kind": "tower", "params": params, "dim": self.dim_}))

    @classmethod
    def load(cls, folder: Path) -> ImageTower:
        import json

        meta = json.loads((folder / "image_encoder.json").read_text())
        self = cls(**meta["params"])
        self.dim_ = meta["dim"]
        self.net_ = _tower_net(self.dim_, self.width)
        self.net_.load_state_dict(_torch().load(folder / "tower.pt", map_location="cpu", weights_only=True))
        self.net_.to(self._device()).eval()
        return self


# --------------------------------------------------------------------------- CLIP
class CLIPImageEncoder:
    """A CLIP-family model from a local folder (``CLIPModel`` via transformers).

    Images and text queries share CLIP's joint space, so text-to-image
    retrieval needs no training. Preprocessing is done here with Pillow and
    NumPy (resize, centre crop, CLIP mean/std), so the folder needs only the
    model weights and config, plus a tokenizer for text queries.

    Parameters
    ----------
    model : local path (or a name already in the local Hugging Face cache).
    device : "cpu", "cuda" or "auto".
    """

    name = "clip"

    def __init__(self, model: str, *, device: str = "auto", batch_size: int = 64) -> None:
        self.model = model
        self.device = device
        self.batch_size = batch_size

    @property
    def size(self) -> int:
        return int(self._model().config.vision_config.image_size)

    def _model(self):
        if not hasattr(self, "model_"):
            from transformers import CLIPModel

            from vitrine.config import resolve_device

            self.device_ = resolve_device(self.device)
            self.model_ = CLIPModel.from_pretrained(self.model, local_files_only=True).to(self.device_).eval()
        return self.model_

    def _tokenizer(self):
        if not hasattr(self, "tokenizer_"):
            try:
                from transformers import AutoTokenizer

                self.tokenizer_ = AutoTokenizer.from_pretrained(self.model, local_files_only=True)
            except Exception as e:  # noqa: BLE001 - a vision-only folder: text queries can't use CLIP
                warnings.warn(f"CLIP model {self.model!r} has no usable tokenizer ({e}); "
                              "text queries will not use the image index", ImageWarning, stacklevel=2)
                self.tokenizer_ = None
        return self.tokenizer_

    def fit(self, images: np.ndarray, text_vectors: np.ndarray, progress: bool = False) -> CLIPImageEncoder:  # noqa: ARG002
        """CLIP is pretrained: fit only loads it."""
        m = self._model()
        self.dim_ = int(m.config.projection_dim)
        return self

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 (n, s, s, 3) -> float32 (n, 3, S, S) normalised for CLIP, S the model's size."""
        from PIL import Image

        s = self.size
        out = np.empty((len(images), 3, s, s), np.float32)
        for i, im in enumerate(images):
            if im.shape[0] != s or im.shape[1] != s:
                im = np.asarray(Image.fromarray(im).resize((s, s), Image.BICUBIC))
            out[i] = ((im.astype(np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
        return out

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        import torch

        m = self._model()
        out = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                px = torch.from_numpy(self.preprocess(images[s: s + self.batch_size])).to(self.device_)
                z = m.get_image_features(pixel_values=px)
                z = getattr(z, "pooler_output", z) if not isinstance(z, torch.Tensor) else z
                out.append(torch.nn.functional.normalize(z, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim_), np.float32)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray | None:
        import torch

        tok = self._tokenizer()
        if tok is None:
            return None
        m = self._model()
        max_len = int(m.config.text_config.max_position_embeddings)
        enc = tok(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        with torch.inference_mode():
            z = m.get_text_features(**{k: v.to(self.device_) for k, v in enc.items()})
            z = getattr(z, "pooler_output", z) if not isinstance(z, torch.Tensor) else z
        return torch.nn.functional.normalize(z, dim=1).cpu().numpy().astype(np.float32)

    def encode_query(self, text: str, text_vector: np.ndarray | None) -> np.ndarray | None:  # noqa: ARG002
        v = self.encode_texts([text])
        return None if v is None else v[0]

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "image_encoder.json").write_text(json.dumps(
            {"kind": "clip", "params": {"model": self.model, "device": self.device, "batch_size": self.batch_size},
             "dim": getattr(self, "dim_", None)}))

    @classmethod
    def load(cls, folder: Path) -> CLIPImageEncoder:
        import json

        meta = json.loads((folder / "image_encoder.json").read_text())
        self = cls(**meta["params"])
        self.dim_ = meta["dim"]
        return self


def image_encoder(spec: str, **tower_params) -> ImageTower | CLIPImageEncoder | None:
    """Factory: "tower" (built-in CNN), "none"/"" (no image modality), else a CLIP path or name."""
    if spec in ("", "none", None):
        return None
    if spec == "tower":
        return ImageTower(**tower_params)
    return CLIPImageEncoder(spec)


def load_image_encoder(folder: Path) -> ImageTower | CLIPImageEncoder:
    import json

    kind = json.loads((folder / "image_encoder.json").read_text())["kind"]
    return ImageTower.load(folder) if kind == "tower" else CLIPImageEncoder.load(folder)
