"""Settings: one place for every knob that chooses components and paths.

Model hyperparameters stay in constructor signatures; settings pick which
model, where files live, and the few policy values shared across modules.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RANKERS = ("lambdamart", "neural", "blend")
DEFAULT_EVENT_WEIGHTS = {"impression": 0.0, "click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}


class Settings(BaseSettings):
    """vitrine settings, read from ``VITRINE_*`` environment variables.

    Attributes
    ----------
    home : Path
        Folder holding the DuckDB store, vector index and model files.
    secret : str
        Key for the keyed hash that pseudonymises user ids. Change it before
        ingesting real shoppers; changing it later orphans stored users.
    """

    model_config = SettingsConfigDict(env_prefix="VITRINE_", env_ignore_empty=True, extra="ignore")

    home: Path = Path(".vitrine")
    secret: str = "vitrine-dev-secret-change-me"
    text_model: str = ""  # empty: the bundled all-MiniLM-L6-v2
    # Batches of product texts in bfloat16 ("bf16"), float32 ("fp32"), or "auto": bf16 where the CPU
    # has it in hardware (vitrine.features.text.TextEncoder).
    text_precision: str = "auto"
    image_model: str = "tower"  # "tower" (built-in CNN trained in fit), "none", or a CLIP path/name
    tower_seconds: float = 90.0  # training budget of the built-in image tower (small catalogs use less)
    # Item vector from the modalities: "average" (text + image, untrained) or a learned fusion
    # ("concat", "weighted", "attention"; see vitrine.features.fusion), which also adds the "item" source.
    item_fusion: str = "average"
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    repurchase: bool = False
    open_reads: bool = True  # reads need no API key when True
    max_request_bytes: int = 8 * 1024 * 1024
    device: str = "auto"  # "cpu", "cuda" or "auto"
    log_served: bool = True  # /search logs each shown result's features (training reads them back)
    result_cache: int = Field(default=1024, ge=0)  # queries whose candidates and query features are kept
    serve_threads: int = Field(default=0, ge=0)  # requests handled at once by `vitrine serve`; 0: one per core, >= 2
    serve_switch_ms: float = Field(default=1.0, gt=0, le=100)  # `vitrine serve`: Python's GIL switch interval
    ranker: str = "lambdamart"  # search ranker: "lambdamart" (LightGBM click model), "neural" or "blend"
    ranker_models: int = Field(default=5, ge=1)  # LambdaMART boosters averaged when trained on judgments alone
    # Judgments alone from at most this many queries: LambdaMART is kept only where 5-fold cross-validation
    # says it ranks held-out queries better than a tuned blend of the retrieval sources (0: no check).
    ranker_check_queries: int = Field(default=1000, ge=0)
    # Saved model versions a save leaves in HOME/models (the newest, and always the current one).
    keep_models: int = Field(default=3, ge=1)
    # A fit from the store first drops served-feature rows logged longer ago than this (0: keep all);
    # older logged pages train on recomputed features, as pages logged before the log existed do.
    served_days: float = Field(default=180.0, ge=0)
    # Training and encoding loops time one thread against all of them and keep the faster
    # (vitrine.threads): two OpenMP threads crawl when another process holds a core.
    adaptive_threads: bool = True
    # Recommendations: LambdaMART over the personal sources' scores, kept where it beats the
    # tuned linear blend on tuning shoppers it did not see (vitrine.personal.stacker).
    learned_blends: bool = True
    # Results a page shows: the recommendation blends, the learned blends and the search ranker's
    # LambdaMART and blend optimise NDCG at this cutoff (`vitrine evaluate … --k K` fits at K unless
    # this is set).
    cutoff: int = Field(default=10, ge=1, le=1000)
    seed: int = 0

    @field_validator("ranker")
    @classmethod
    def _check_ranker(cls, v: str) -> str:
        if v not in RANKERS:
            raise ValueError(f"VITRINE_RANKER must be one of {', '.join(RANKERS)}, got {v!r}")
        return v

    @field_validator("text_precision")
    @classmethod
    def _check_precision(cls, v: str) -> str:
        from vitrine.features.text import PRECISIONS  # the encoder's own list: the two cannot drift

        if v not in PRECISIONS:
            raise ValueError(f"VITRINE_TEXT_PRECISION must be one of {', '.join(PRECISIONS)}, got {v!r}")
        return v

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, v: object) -> object:
        return Path(os.path.expanduser(str(v))) if v is not None else v


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def resolve_device(setting: str = "auto") -> str:
    """Return "cuda" when asked for or available under "auto", else "cpu"."""
    if setting != "auto":
        return setting
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"
