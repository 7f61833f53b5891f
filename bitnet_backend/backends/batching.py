"""Checks shared by every backend's ``eval_batch`` / ``hidden_states_batch``.

A batch is checked whole before any session changes, so a bad item leaves every session of
the batch as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from ..errors import ContextOverflowError, InvalidParameterError


class _Sequence(Protocol):
    @property
    def n_past(self) -> int: ...

    @property
    def n_ctx(self) -> int: ...


S = TypeVar("S", bound=_Sequence)


def check_ids(ids: Sequence[int], vocab: int, what: str) -> np.ndarray:
    """``ids`` as int32 [n >= 1], every id in [0, vocab); else InvalidParameterError."""
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.size == 0:
        raise InvalidParameterError(f"{what} needs at least one token")
    if arr.min() < 0 or arr.max() >= vocab:
        raise InvalidParameterError(
            f"{what}: token ids must be in [0, {vocab}), got {arr.min()}..{arr.max()}"
        )
    return arr.astype(np.int32)


def check_batch(
    items: Sequence[tuple[S, Sequence[int]]], owns: Callable[[Any], bool], vocab: int
) -> list[tuple[S, np.ndarray]]:
    """Each ``(session, ids)`` item with its ids as int32, after checking the whole batch.

    Each session must be a distinct open session of the engine (``owns``), each ids non-empty
    and in the vocabulary, and fit in its session's context (ContextOverflowError).
    """
    seen: set[int] = set()
    checked = []
    for i, item in enumerate(items):
        if not isinstance(item, tuple) or len(item) != 2:
            raise InvalidParameterError(f"eval_batch item {i} must be a (session, ids) pair")
        session, ids = item
        if not owns(session):
            raise InvalidParameterError(f"eval_batch item {i} is not an open session of the engine")
        if id(session) in seen:
            raise InvalidParameterError(f"eval_batch item {i} repeats a session of the batch")
        seen.add(id(session))
        arr = check_ids(ids, vocab, f"eval_batch item {i}")
        needed = session.n_past + int(arr.size)
        if needed > session.n_ctx:
            raise ContextOverflowError(needed, session.n_ctx)
        checked.append((session, arr))
    return checked


def check_texts(batch: Sequence[Sequence[int]], vocab: int, max_positions: int) -> list[np.ndarray]:
    """The ids of each text of a ``hidden_states_batch`` call, checked like ``check_batch``."""
    arrays = []
    for i, ids in enumerate(batch):
        arr = check_ids(ids, vocab, f"hidden_states_batch item {i}")
        if arr.size > max_positions:
            raise ContextOverflowError(int(arr.size), max_positions)
        arrays.append(arr)
    return arrays
