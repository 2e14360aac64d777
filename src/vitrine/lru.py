"""Lock-free LRU helpers over an ``OrderedDict``, shared by the serving caches.

Requests read and fill these caches from several threads without a lock:
each step is one atomic dict operation, and a key another thread evicted
in between counts as a miss instead of an error.
"""

from __future__ import annotations

from collections import OrderedDict


def lru_get(cache: OrderedDict, key):
    """The value kept under ``key`` (now the most recently used), or None."""
    try:
        v = cache[key]
        cache.move_to_end(key)
        return v
    except KeyError:  # a miss, or evicted by another thread meanwhile
        return None


def lru_put(cache: OrderedDict, key, value, size: int) -> None:
    """Keep ``value`` under ``key``; drop the least recently used beyond ``size``."""
    cache[key] = value
    while len(cache) > size:
        try:
            cache.popitem(last=False)
        except KeyError:  # emptied by another thread meanwhile
            break
