"""vitrine: multimodal, personalized product search and ranking."""

from vitrine.version import __version__

__all__ = ["Engine", "Settings", "__version__"]


def __getattr__(name: str):  # lazy: importing vitrine must not import torch
    if name == "Engine":
        from vitrine.engine import Engine

        return Engine
    if name == "Settings":
        from vitrine.config import Settings

        return Settings
    raise AttributeError(name)
