"""A query encoder tuned on training judgments, against the frozen product vectors.

The pretrained text model embeds queries and titles in one space, but it
never saw this shop's vocabulary ("romex", "2x4", "pvc"). Given judged
(query, product) pairs, the top transformer layers of a copy of the model
are trained so that a query's vector moves towards its relevant products'
vectors, with a softmax over the *whole catalog* as negatives. Product
vectors stay as they were: nothing is re-encoded, the vector index is
untouched, and a product added later is encoded the usual way. Only the
tuned layers are saved (a few MB), on top of the shared base model.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrine.threads import torch_threads


class QueryTuner:
    """Fine-tunes the query side of a sentence-transformers model.

    Parameters
    ----------
    layers : top transformer layers trained (the rest, embeddings included, stay frozen).
    epochs, max_seconds : training budget (whichever ends first).
    lr, batch_size, temperature : optimiser and softmax settings.
    min_queries : fewer judged queries than this: no tuning (``fit`` returns None).
    seed : random seed.

    Attributes
    ----------
    model_ : the tuned sentence-transformers model (a copy; the base is untouched).
    history_ : mean loss per epoch.
    """

    def __init__(self, *, layers: int = 2, epochs: int = 3, max_seconds: float = 180.0, lr: float = 1e-4,
                 batch_size: int = 128, temperature: float = 0.05, min_queries: int = 100,
                 seed: int = 0) -> None:  # fmt: skip
        self.layers = layers
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.lr = lr
        self.batch_size = batch_size
        self.temperature = temperature
        self.min_queries = min_queries
        self.seed = seed

    @staticmethod
    def pairs(judgments, row_of) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """query -> (catalog rows, gains 2^grade - 1) of its products with grade > 0."""
        if judgments is None or not len(judgments):
            return {}
        j = judgments[judgments["grade"].astype(float) > 0]
        rows = row_of(j["product_id"].astype(str).tolist())
        j = j.assign(_row=rows)[rows >= 0]
        return {str(q): (g["_row"].to_numpy(np.int64), 2.0 ** g["grade"].to_numpy(np.float64) - 1)
                for q, g in j.groupby("query", sort=True)}

    def _trainable(self, model):
        encoder_layers = model[0].auto_model.encoder.layer
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in encoder_layers[-self.layers:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        return [p for p in model.parameters() if p.requires_grad]

    def fit(self, base_model, pairs: dict[str, tuple[np.ndarray, np.ndarray]], item_vectors: np.ndarray,
            device: str = "cpu", progress: bool = False) -> QueryTuner | None:  # fmt: skip
        """Train on ``pairs`` (see :meth:`pairs`); ``item_vectors`` (n, d) unit rows of the catalog."""
        import torch

        if len(pairs) < self.min_queries or item_vectors is None:
            return None
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        model = copy.deepcopy(base_model).to(device)
        params = self._trainable(model)
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=0.01)
        items = torch.from_numpy(np.ascontiguousarray(item_vectors, np.float32)).to(device)
        queries = list(pairs)
        self.history_: list[float] = []
        start = time.time()
        steps = max(1, -(-len(queries) // self.batch_size))
        bar = tqdm(total=self.epochs * steps, desc="tune query encoder", unit="step", disable=not progress)
        with torch_threads(str(device).split(":")[0]) as gov:
            for _ in range(self.epochs):
                model.train()
                order = rng.permutation(len(queries))
                losses = []
                for s in range(steps):
                    batch = [queries[i] for i in order[s * self.batch_size: (s + 1) * self.batch_size]]
                    target = torch.zeros(len(batch), len(items), device=device)
                    for i, q in enumerate(batch):
                        rows, gain = pairs[q]
                        target[i, torch.as_tensor(rows.copy(), device=device)] = torch.as_tensor(gain / gain.sum(), device=device).float()
                    prep = getattr(model, "preprocess", None) or model.tokenize
                    feats = {k: v.to(device) if hasattr(v, "to") else v for k, v in prep(batch).items()}
                    e = torch.nn.functional.normalize(model(feats)["sentence_embedding"], dim=1)
                    logp = torch.log_softmax(e @ items.T / self.temperature, dim=1)
                    loss = -(target * logp).sum(1).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                    bar.update(1)
                    gov.tick(len(batch))
                    if time.time() - start > self.max_seconds:
                        break
                self.history_.append(float(np.mean(losses)))
                if time.time() - start > self.max_seconds:
                    break
        bar.close()
        self.seconds_ = time.time() - start
        model.eval()
        self.model_ = model
        return self

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Unit-norm query vectors (len(texts), d) float32."""
        return self.model_.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def save(self, folder: Path) -> None:
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        layers = self.model_[0].auto_model.encoder.layer[-self.layers:]
        torch.save({f"{i}.{k}": v.cpu() for i, layer in enumerate(layers) for k, v in layer.state_dict().items()},
                   folder / "tuned_layers.pt")
        params = {k: getattr(self, k) for k in ("layers", "epochs", "max_seconds", "lr", "batch_size",
                                                "temperature", "min_queries", "seed")}
        (folder / "query_tuner.json").write_text(json.dumps({"params": params}))

    @classmethod
    def load(cls, folder: Path, base_model, device: str = "cpu") -> QueryTuner:
        import torch

        self = cls(**json.loads((folder / "query_tuner.json").read_text())["params"])
        model = copy.deepcopy(base_model)
        state = torch.load(folder / "tuned_layers.pt", map_location="cpu", weights_only=True)
        for i, layer in enumerate(model[0].auto_model.encoder.layer[-self.layers:]):
            layer.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.split(".", 1)[0] == str(i)})
        self.model_ = model.to(device).eval()
        return self
