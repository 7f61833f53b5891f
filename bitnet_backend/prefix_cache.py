"""Prefix cache: the KV caches of finished sequences, reused by prompts that start the same.

Multi-turn chats and requests sharing a system prompt or RAG instructions start with tokens
an earlier sequence already evaluated. The cache keeps finished sequences (least recently
used first out), bounded by the KV positions they hold, and starts a new request from the
longest common prefix. When the engine copies prefixes natively, a cached sequence is a
read-only source that many requests copy from at once; otherwise the request takes the
cached sequence over and cuts it back to the common prefix (copying would mean evaluating
the prefix again).

Only the scheduler thread uses a PrefixCache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import engine_ops

if TYPE_CHECKING:
    from .backend import Engine, Session


@dataclass
class _Entry:
    session: Session
    tokens: list[int]


class PrefixCache:
    """An LRU of finished sequences holding at most ``capacity`` KV positions in total."""

    def __init__(self, engine: Engine, capacity: int) -> None:
        self._engine = engine
        self.capacity = capacity
        self._entries: list[_Entry] = []  # least recently used first
        self.hits = 0
        self.reused_tokens = 0

    @property
    def positions(self) -> int:
        """KV positions the cached sequences hold (what the capacity bounds)."""
        return sum(e.session.n_ctx for e in self._entries)

    def session_for(self, prompt: Sequence[int], size: int) -> tuple[Session, int]:
        """A session of at least ``size`` positions and how many of ``prompt`` it holds.

        The last prompt token is always left to evaluate: its logits start the generation.
        """
        best, common = None, 0
        limit = len(prompt) - 1
        for entry in self._entries:
            n = _common_prefix(entry.tokens, prompt, limit)
            if n > common:
                best, common = entry, n
        if best is None:
            return self._engine.new_session(size), 0
        if engine_ops.copies_prefixes(best.session):
            session = self._engine.new_session(size)
            try:
                engine_ops.copy_prefix(session, best.session, common)
            except BaseException:
                session.close()
                raise
            self._entries.remove(best)
            self._entries.append(best)  # most recently used
        elif best.session.n_ctx >= size:
            self._entries.remove(best)
            session = best.session
            session.truncate(common)
        else:
            return self._engine.new_session(size), 0
        self.hits += 1
        self.reused_tokens += common
        return session, common

    def store(self, session: Session) -> None:
        """Keep a finished sequence (the cache owns it from now on)."""
        tokens = session.tokens
        if not tokens or session.n_ctx > self.capacity:
            session.close()
            return
        for entry in list(self._entries):
            if _common_prefix(entry.tokens, tokens, len(tokens)) == len(entry.tokens):
                self._entries.remove(entry)  # the new sequence extends it: it adds nothing
                entry.session.close()
        self._entries.append(_Entry(session, tokens))
        total = self.positions
        while total > self.capacity:
            oldest = self._entries.pop(0)
            total -= oldest.session.n_ctx
            oldest.session.close()

    def clear(self) -> None:
        """Free every cached sequence."""
        entries, self._entries = self._entries, []
        for entry in entries:
            entry.session.close()


def _common_prefix(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    stop = min(len(a), len(b), limit)
    while n < stop and a[n] == b[n]:
        n += 1
    return n
