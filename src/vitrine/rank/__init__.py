"""Ranking: feature assembly, labels and propensities, rankers, explanations."""

from vitrine.rank.ranker import SearchRanker

__all__ = ["SearchRanker"]
