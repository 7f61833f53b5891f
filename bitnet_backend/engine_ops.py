"""Engine calls the scheduler makes, with a sequential fallback for engines without them.

A backend may offer batched calls natively: ``engine.eval_batch(items)`` (one forward over
several sessions' new tokens), ``engine.sample_batch(rows)`` (the next token of several
sessions in one call), ``engine.hidden_states_batch(id_lists)`` and
``session.copy_prefix(src, n)``. The functions here use them when present and otherwise do
the same work one sequence at a time, so every backend runs the same scheduler. The results
are the same either way: a sequence's logits in a batched step equal its logits alone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from .errors import BitnetError

if TYPE_CHECKING:
    from .backend import Engine, Session
    from .sampling import SamplingParams

# One sequence's next token to sample: its session, options and mask of allowed tokens.
SampleRow = tuple["Session", "SamplingParams", "np.ndarray | None"]


def eval_batch(
    engine: Engine, items: Sequence[tuple[Session, Sequence[int]]]
) -> list[BaseException | None]:
    """Append each item's ids to its session; the error of each item (None when it ran).

    One item's failure never stops the others: when the native batched call raises, the
    items it has not advanced are run one by one so that each error lands on its own item.
    """
    native = getattr(engine, "eval_batch", None)
    if native is not None and len(items) > 1:
        before = [session.n_past for session, _ in items]
        try:
            native(items)
            return [None] * len(items)
        except Exception:
            pending = [
                i
                for i, ((session, ids), n) in enumerate(zip(items, before, strict=True))
                if session.n_past != n + len(ids)
            ]
            errors: list[BaseException | None] = [None] * len(items)
            for i in pending:
                errors[i] = _eval_one(*items[i])
            return errors
    return [_eval_one(session, ids) for session, ids in items]


def sample_batch(engine: Engine, rows: Sequence[SampleRow]) -> list[int | BaseException]:
    """The next token of each row's session, or the error of that row alone.

    Each row samples exactly as ``session.sample(params, mask)`` would. A native call
    samples every row with the GIL released once; it checks the whole batch before sampling
    any row, so when it raises, the rows are sampled one by one and each error lands on its
    own row.
    """
    native = getattr(engine, "sample_batch", None)
    if native is not None and len(rows) > 1:
        try:
            return list(native(rows))
        except Exception:
            pass
    return [_sample_one(*row) for row in rows]


def _sample_one(
    session: Session, params: SamplingParams, mask: np.ndarray | None
) -> int | BaseException:
    try:
        return session.sample(params, mask)
    except Exception as exc:
        return exc


def _eval_one(session: Session, ids: Sequence[int]) -> BaseException | None:
    try:
        session.eval(ids)
    except Exception as exc:
        return exc
    return None


def copy_prefix(dst: Session, src: Session, n: int) -> None:
    """Make the empty session ``dst`` hold the first ``n`` positions of ``src``."""
    native = getattr(dst, "copy_prefix", None)
    if native is not None:
        native(src, n)
    else:
        dst.eval(src.tokens[:n])  # the same positions, computed again


def copies_prefixes(session: Session) -> bool:
    """True when ``session`` copies a cached prefix natively (cheaper than evaluating it)."""
    return getattr(session, "copy_prefix", None) is not None


def hidden_states_batch(engine: Engine, id_lists: Sequence[Sequence[int]]) -> list[np.ndarray]:
    """Fresh forwards (no state kept): final-normed hidden states of each id list."""
    native = getattr(engine, "hidden_states_batch", None)
    if native is not None and len(id_lists) > 1:
        return [np.asarray(h, dtype=np.float32) for h in native(id_lists)]
    return [np.asarray(engine.hidden_states(ids), dtype=np.float32) for ids in id_lists]


class InFlightCalls:
    """Counts engine calls made on callers' threads, so the engine is freed only after them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0
        self._closed = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """Hold the engine open for one call (BitnetError once closing has begun)."""
        with self._cond:
            if self._closed:
                raise BitnetError("the model is closed")
            self._count += 1
        try:
            yield
        finally:
            with self._cond:
                self._count -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Refuse new calls and wait for the running ones (each is one bounded forward)."""
        with self._cond:
            self._closed = True
            while self._count:
                self._cond.wait()
