"""Shopper models: collaborative filtering, sequential model, live profiles."""

from vitrine.personal.personalizer import Personalizer

__all__ = ["Personalizer"]
