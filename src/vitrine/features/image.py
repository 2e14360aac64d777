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

from vitrine.threads import torch_threads

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


def colour_histogram(images: np.ndarray, bins: int = 4) -> np.ndarray:
    """Share of non-background pixels in each of bins**3 RGB cells, (n, bins**3) float32.

    Near-white pixels (the usual product-photo background) are left out, so a
    small red shoe on a white page reads as red, not as white.
    """
    n = len(images)
    px = images.reshape(n, -1, 3).astype(np.int32)
    fg = px.min(2) < 235
    q = (px * bins) // 256
    cell = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    out = np.zeros((n, bins ** 3), np.float32)
    for i in range(n):
        c = cell[i][fg[i]] if fg[i].any() else cell[i]
        out[i] = np.bincount(c, minlength=bins ** 3) / max(1, len(c))
    return out


HIST_BINS = 8


def side_features(images: np.ndarray) -> np.ndarray:
    """Cheap fixed features the tower's head sees beside the CNN, (n, 960) float32.

    sqrt colour histogram of the foreground (8x8x8 cells), an 8x8 colour
    thumbnail and a 16x16 foreground silhouette: colour and rough shape,
    which a head can learn from in seconds on CPU.
    """
    from PIL import Image

    n = len(images)
    hist = np.sqrt(colour_histogram(images, HIST_BINS))
    thumbs = np.empty((n, 8 * 8 * 3), np.float32)
    masks = np.empty((n, 16 * 16), np.float32)
    for i, im in enumerate(images):
        pil = Image.fromarray(im)
        thumbs[i] = np.asarray(pil.resize((8, 8), Image.BOX), np.float32).ravel() / 255.0
        fg = (im.min(2) < 235).astype(np.uint8) * 255
        masks[i] = np.asarray(Image.fromarray(fg).resize((16, 16), Image.BOX), np.float32).ravel() / 255.0
    return np.concatenate([hist, thumbs, masks], 1)


N_SIDE = HIST_BINS ** 3 + 8 * 8 * 3 + 16 * 16
HIDDEN = 512


def _tower_net(dim: int, width: int = 16, cnn: bool = True, n_terms: int = 0):
    torch = _torch()
    nn = torch.nn

    def conv(i, o, stride=1):
        return nn.Sequential(nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o),
                             nn.ReLU(inplace=True))

    class Tower(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.register_buffer("mu", torch.zeros(N_SIDE))
            self.register_buffer("sd", torch.ones(N_SIDE))
            self.side = nn.Sequential(nn.Linear(N_SIDE, HIDDEN), nn.LayerNorm(HIDDEN), nn.ReLU(inplace=True),
                                      nn.Dropout(0.2))
            self.out = nn.Linear(HIDDEN, dim)
            self.terms = nn.Linear(HIDDEN, n_terms) if n_terms else None
            self.use_cnn = cnn
            if cnn:
                self.body = nn.Sequential(conv(3, w, 2), conv(w, 2 * w), nn.MaxPool2d(2), conv(2 * w, 4 * w),
                                          nn.MaxPool2d(2), conv(4 * w, 8 * w), nn.MaxPool2d(2))
                self.cnn_proj = nn.Linear(16 * w, HIDDEN)
                nn.init.zeros_(self.cnn_proj.weight)  # starts as the side-feature model
                nn.init.zeros_(self.cnn_proj.bias)

        def forward(self, x, side, with_terms: bool = False):
            h = self.side[0]((side - self.mu) / self.sd)
            if self.use_cnn and x is not None:
                c = self.body(x)
                h = h + self.cnn_proj(torch.cat([c.mean((2, 3)), c.amax((2, 3))], 1))
            h = self.side[3](self.side[2](self.side[1](h)))
            z = nn.functional.normalize(self.out(h), dim=1)
            if with_terms:
                return z, (self.terms(h) if self.terms is not None else None)
            return z

    return Tower()


def _augment(x, rng: np.random.Generator):
    """Random mirror and shift (up to 1/8 of the side, white fill): the trunk overfits small catalogs without it."""
    torch = _torch()
    if rng.random() < 0.5:
        x = x.flip(3)
    s = x.shape[-1]
    m = max(1, s // 8)
    dy, dx = (int(v) for v in rng.integers(-m, m + 1, 2))
    pad = torch.nn.functional.pad(x, (m, m, m, m), value=2.0)  # 2.0 = white after normalisation
    return pad[:, :, m + dy: m + dy + s, m + dx: m + dx + s]


def _to_tensor(images: np.ndarray):
    torch = _torch()
    x = torch.from_numpy(np.array(images, copy=True)).permute(0, 3, 1, 2).float().div_(255.0)
    return x.sub_(0.5).div_(0.25)


class ImageTower:
    """Small CNN trained in ``fit`` to map images into a text embedding space.

    Parameters
    ----------
    size : image side in pixels the tower sees.
    width : channels of the first layer (the network doubles it three times).
    cnn : train the convolutional trunk (False: the head on side features only).
    head_epochs, head_share : epochs and share of ``max_seconds`` for the
        first, head-only phase.
    epochs : upper bound on joint (CNN + head) passes over the training images.
    max_seconds : wall-clock training budget (the bound that usually binds on CPU).
    batch_size, lr : optimiser settings.
    temperature : softmax temperature of the image-text logits.
    soft_temperature : temperature of the text-text similarities used as soft
        targets, so that products with the same description are not negatives.
    term_weight : weight of the visual-term loss (one logistic output per word
        of :class:`~vitrine.features.visual_terms.VisualTerms`) when ``fit``
        gets ``terms``.
    members : networks trained with different seeds, each on an equal share
        of ``max_seconds``, whose outputs are averaged (an ensemble).
    seed : random seed.
    device : "cpu", "cuda" or "auto".

    Attributes
    ----------
    nets_ : the trained torch modules (one per member).
    history_ : mean training loss per epoch.
    """

    name = "tower"

    def __init__(
        self,
        *,
        size: int = 64,
        width: int = 16,
        cnn: bool = True,
        head_epochs: int = 200,
        head_share: float = 0.3,
        epochs: int = 30,
        max_seconds: float = 90.0,
        batch_size: int = 256,
        lr: float = 2e-3,
        temperature: float = 0.05,
        soft_temperature: float = 0.05,
        term_weight: float = 1.0,
        members: int = 1,
        seed: int = 0,
        device: str = "auto",
    ) -> None:
        self.size = size
        self.width = width
        self.cnn = cnn
        self.head_epochs = head_epochs
        self.head_share = head_share
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.soft_temperature = soft_temperature
        self.term_weight = term_weight
        self.members = members
        self.seed = seed
        self.device = device

    def _device(self) -> str:
        from vitrine.config import resolve_device

        return resolve_device(self.device)

    def _loss(self, out, ti, yi=None):
        torch = _torch()
        z, term_logits = out
        logits = z @ ti.T / self.temperature
        soft = torch.softmax(ti @ ti.T / self.soft_temperature, dim=1)
        loss = (-(soft * torch.log_softmax(logits, 1)).sum(1).mean()
                - (soft * torch.log_softmax(logits.T, 1)).sum(1).mean()) / 2
        if yi is not None and term_logits is not None:
            loss = loss + self.term_weight * torch.nn.functional.binary_cross_entropy_with_logits(term_logits, yi)
        return loss

    def fit(self, images: np.ndarray, text_vectors: np.ndarray, progress: bool = False,
            terms: np.ndarray | None = None) -> ImageTower:
        """Align ``images`` (n, s, s, 3) uint8 with ``text_vectors`` (n, d), row by row.

        ``terms`` (n, V) multi-hot, optional: which visual words each
        product's text contains; the tower then also learns P(word | photo).

        Each of ``members`` networks gets an equal share of ``max_seconds``
        and its own seed. Two phases share a member's budget: the head first
        learns from the fixed side features alone (fast: many epochs in
        seconds), then the CNN and head train together for the rest of the
        budget / ``epochs``. The learning rate follows a cosine of the spent
        share of the budget.
        """
        torch = _torch()
        dev = self._device()
        t = torch.nn.functional.normalize(torch.from_numpy(np.asarray(text_vectors, np.float32)), dim=1)
        self.dim_ = int(t.shape[1])
        self.n_terms_ = 0 if terms is None else int(terms.shape[1])
        y = None if terms is None else torch.from_numpy(np.asarray(terms, np.uint8))
        n = len(images)
        self.history_: list[float] = []
        self.seconds_ = 0.0
        k = max(1, int(self.members))
        self.nets_ = []
        for i in range(k):
            torch.manual_seed(self.seed + i)  # each member's initial weights come from its own seed
            self.nets_.append(_tower_net(self.dim_, self.width, cnn=self.cnn, n_terms=self.n_terms_).to(dev))
        if n < 2:
            for net in self.nets_:
                net.eval()
            return self
        side = torch.from_numpy(side_features(images))
        x_all = _to_tensor(images) if self.cnn else None
        start = time.time()
        bar = tqdm(total=k * (self.head_epochs + (self.epochs if self.cnn else 0)), desc="image tower",
                   unit="epoch", disable=not progress)
        for i, net in enumerate(self.nets_):
            budget = (self.max_seconds - (time.time() - start)) / (k - i)
            self._fit_member(net, x_all, side, t, y, budget, self.seed + i, bar)
            net.eval()
        bar.close()
        self.seconds_ = time.time() - start
        return self

    def _fit_member(self, net, x_all, side, t, y, budget: float, seed: int, bar) -> None:
        torch = _torch()
        rng = np.random.default_rng(seed)
        dev = self._device()
        n = len(side)
        net.mu.copy_(side.mean(0))
        net.sd.copy_(side.std(0) + 1e-3)
        bs = min(self.batch_size, n)
        steps = max(1, n // bs)
        start = time.time()

        def run(phase_epochs, phase_budget, params, with_cnn, lr):
            with torch_threads(dev) as gov:
                opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
                t0, total = time.time(), phase_epochs * steps
                step = 0
                for _ in range(phase_epochs):
                    net.train()
                    perm = rng.permutation(n)
                    losses = []
                    for s in range(steps):
                        frac = max(step / total, (time.time() - t0) / max(phase_budget, 1e-6))
                        if frac >= 1:
                            break
                        for g in opt.param_groups:
                            g["lr"] = lr * (0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * frac)))
                        idx = torch.from_numpy(perm[s * bs: (s + 1) * bs])
                        x = None
                        if with_cnn:
                            x = _augment(x_all[idx], rng).to(dev)
                        yi = None if y is None else y[idx].to(dev).float()
                        loss = self._loss(net(x, side[idx].to(dev), with_terms=True), t[idx].to(dev), yi)
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                        losses.append(float(loss.detach()))
                        step += 1
                        gov.tick()
                    if losses:
                        self.history_.append(float(np.mean(losses)))
                    bar.update(1)
                    if (time.time() - t0) >= phase_budget or step >= total:
                        break

        head_params = [p for name, p in net.named_parameters() if not name.startswith(("body", "cnn_proj"))]
        run(self.head_epochs, budget * (self.head_share if self.cnn else 1.0), head_params, False, self.lr)
        left = budget - (time.time() - start)
        if self.cnn and left > 1 and self.epochs > 0:
            run(self.epochs, left, list(net.parameters()), True, self.lr / 2)

    def encode_images(self, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Unit-norm vectors (n, dim) in the text space for uint8 images (n, s, s, 3)."""
        return self.encode(images, batch_size)[0]

    def encode(self, images: np.ndarray, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray | None]:
        """(unit-norm vectors (n, dim), log P(word | photo) (n, V) or None without a term head)."""
        torch = _torch()
        dev = self._device()
        out, terms = [], []
        views = (False,) if not self.cnn else (False, True)  # the tower was trained on mirrored images too
        with torch.inference_mode(), torch_threads(dev) as gov:
            for s in range(0, len(images), batch_size):
                gov.tick()  # times the batch before this one (only the last batch is short)
                x = _to_tensor(images[s: s + batch_size]).to(dev) if self.cnn else None
                h = torch.from_numpy(side_features(images[s: s + batch_size])).to(dev)
                zs, lgs = [], []
                for net in self.nets_:
                    for flip in views:
                        z, lg = net(None if x is None else (x.flip(3) if flip else x), h, with_terms=True)
                        zs.append(z)
                        lgs.append(lg)
                z = torch.nn.functional.normalize(torch.stack(zs).sum(0), dim=1)
                out.append(z.cpu().numpy())
                if lgs[0] is not None:
                    lg = torch.stack(lgs).mean(0)
                    terms.append(torch.nn.functional.logsigmoid(lg).cpu().numpy())
        vecs = np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim_), np.float32)
        if not getattr(self, "n_terms_", 0):
            return vecs, None
        logp = np.concatenate(terms).astype(np.float32) if terms else np.zeros((0, self.n_terms_), np.float32)
        return vecs, logp

    def encode_query(self, text: str, text_vector: np.ndarray | None) -> np.ndarray | None:
        """A text query lives in the text encoder's space: its vector is the query vector."""
        return None if text_vector is None else np.asarray(text_vector, np.float32)

    def save(self, folder: Path) -> None:
        import json

        folder.mkdir(parents=True, exist_ok=True)
        for i, net in enumerate(self.nets_):
            _torch().save(net.state_dict(), folder / ("tower.pt" if i == 0 else f"tower-{i}.pt"))
        params = {k: getattr(self, k) for k in ("size", "width", "cnn", "head_epochs", "head_share", "epochs", "max_seconds", "batch_size", "lr",
                                                  "temperature", "soft_temperature", "term_weight", "members", "seed", "device")}
        (folder / "image_encoder.json").write_text(json.dumps(
            {"kind": "tower", "params": params, "dim": self.dim_, "n_terms": getattr(self, "n_terms_", 0)}))

    @classmethod
    def load(cls, folder: Path) -> ImageTower:
        import json

        meta = json.loads((folder / "image_encoder.json").read_text())
        self = cls(**meta["params"])
        self.dim_ = meta["dim"]
        self.n_terms_ = int(meta.get("n_terms", 0))
        self.nets_ = []
        for i in range(max(1, int(self.members))):
            net = _tower_net(self.dim_, self.width, cnn=self.cnn, n_terms=self.n_terms_)
            f = folder / ("tower.pt" if i == 0 else f"tower-{i}.pt")
            net.load_state_dict(_torch().load(f, map_location="cpu", weights_only=True))
            self.nets_.append(net.to(self._device()).eval())
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
