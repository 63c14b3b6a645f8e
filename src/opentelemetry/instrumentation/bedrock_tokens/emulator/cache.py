"""The emulated prompt cache: which prefixes were written, so repeats are reported as reads.

Semantics follow Anthropic/Bedrock prompt caching closely enough for accounting tests: each cache
point closes a prefix; the longest prefix already cached is read, the tokens from there to the
last cache point are written, and every prefix of the request is cached afterwards. Entries are
keyed by model id and a digest of the prefix text and never expire (``reset()`` clears them);
the table is bounded so long runs keep constant memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["PromptCache"]


class PromptCache:
    """Thread-safe, bounded (LRU) set of cached prefixes."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max_entries = max_entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def lookup_and_store(
        self, model_key: str, prefixes: Sequence[tuple[int, str]]
    ) -> tuple[int, int]:
        """Return ``(cache_read, cache_write)`` tokens for a request's cache prefixes.

        ``prefixes`` are ``(prefix_tokens, digest)`` in request order (non-decreasing tokens).
        """
        if not prefixes:
            return 0, 0
        with self._lock:
            read = 0
            for tokens, digest in prefixes:
                key = (model_key, digest)
                if key in self._entries:
                    self._entries.move_to_end(key)
                    read = max(read, tokens)
            last_tokens = prefixes[-1][0]
            write = last_tokens - read
            for _tokens, digest in prefixes:
                self._entries[(model_key, digest)] = None
                self._entries.move_to_end((model_key, digest))
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return read, write
