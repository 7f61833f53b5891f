"""The Backend / Engine / Session protocols every backend plugin implements.

The public Model talks to a backend only through these three protocols:

* ``Backend``: a named, prioritised factory (``available()``, ``load(checkpoint, ...)``).
* ``Engine``: one loaded model; stateless forwards (``logits``, ``hidden_states``,
  ``hidden_states_batch``), ``new_session()``, and ``eval_batch``: one step over the new
  tokens of several sessions (continuous batching), bit for bit what each alone would give.
* ``Session``: one sequence with its own KV cache. ``eval`` appends tokens; ``sample`` draws
  the next token from the logits of the last evaluated position (see ``sampling.py`` for the
  exact algorithm every backend must follow, so that a seed gives the same text everywhere).

Several sessions of one engine may run at once from different threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .checkpoints.hf import Checkpoint
    from .config import ModelConfig
    from .sampling import SamplingParams


@runtime_checkable
class Session(Protocol):
    """One token sequence and its KV cache."""

    @property
    def n_past(self) -> int:
        """Number of tokens already in the KV cache."""
        ...

    @property
    def n_ctx(self) -> int:
        """Capacity of the KV cache in tokens."""
        ...

    def eval(self, ids: Sequence[int], all_logits: bool = False) -> np.ndarray | None:
        """Append ``ids`` to the sequence (batched prefill when len > 1).

        Returns float32 logits ``[len(ids), vocab]`` when ``all_logits`` else ``None``; the
        logits of the last position are kept for ``sample`` / ``last_logits``. Raises
        ContextOverflowError (leaving the session unchanged) when n_past + len(ids) > n_ctx.
        """
        ...

    def last_logits(self) -> np.ndarray:
        """A float32 copy of the logits of the last evaluated position, shape [vocab]."""
        ...

    def sample(self, params: SamplingParams, mask: np.ndarray | None = None) -> int:
        """Draw the next token from the last logits (``sampling.sample`` semantics).

        ``mask`` is an optional uint32 bitmask over the vocabulary (bit ``t % 32`` of word
        ``t // 32`` set = token ``t`` allowed). The session keeps its own RNG seeded by
        ``set_seed`` and the token history used by the repetition penalty.
        """
        ...

    def set_seed(self, seed: int) -> None:
        """Reset the session's RNG."""
        ...

    def truncate(self, n: int) -> None:
        """Forget every position >= n (0 <= n <= n_past), e.g. to reuse a common prefix."""
        ...

    @property
    def tokens(self) -> list[int]:
        """The token ids currently in the KV cache."""
        ...

    def copy_prefix(self, src: Session, n: int) -> None:
        """Hold the first ``n`` positions of ``src``, a session of the same engine.

        Replaces this session's KV rows and tokens (whatever it held before) with those of
        ``src``, so one cached prefix can serve several sequences; later evals give the bits
        of a session that evaluated those ``n`` tokens itself. When ``n == src.n_past`` the
        last logits come along (``sample`` works at once); the RNG is not copied.
        InvalidParameterError unless 0 <= n <= src.n_past; ContextOverflowError if n > n_ctx.
        """
        ...

    def close(self) -> None:
        """Free the KV cache."""
        ...


@runtime_checkable
class Engine(Protocol):
    """A model loaded by one backend."""

    config: ModelConfig
    backend_name: str

    @property
    def info(self) -> dict[str, Any]:
        """Backend-specific facts: kernel ISA, weight layout, threads, bytes of weights."""
        ...

    def new_session(self, n_ctx: int) -> Session:
        """A fresh sequence with room for ``n_ctx`` tokens."""
        ...

    def logits(self, ids: Sequence[int]) -> np.ndarray:
        """Fresh forward over ``ids`` (no state kept): float32 [len(ids), vocab]."""
        ...

    def hidden_states(self, ids: Sequence[int]) -> np.ndarray:
        """Fresh forward: final-normed hidden states, float32 [len(ids), hidden]."""
        ...

    def eval_batch(self, items: Sequence[tuple[Session, Sequence[int]]]) -> None:
        """One forward over the new tokens of several sessions at once.

        Item ``(session, ids)`` appends ``ids`` (a decode token or a prefill chunk, >= 1 id)
        at that session's next positions. Afterwards each session's ``last_logits`` /
        ``sample`` / ``n_past`` / ``tokens`` are exactly (bit for bit) what
        ``session.eval(ids)`` alone would have left. The whole batch is checked first:
        distinct open sessions of this engine, ids in the vocabulary and non-empty
        (InvalidParameterError), room in each context (ContextOverflowError); on error no
        session changes. A backend may run the items one after another.
        """
        ...

    def hidden_states_batch(self, batch: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Fresh forwards of several texts in shared steps (no state kept).

        Item i equals ``hidden_states(batch[i])`` bit for bit; every text needs >= 1 id.
        """
        ...

    def close(self) -> None:
        """Release the weights."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A backend plugin: registered through the ``bitnet_backend`` entry-point group."""

    name: str
    priority: int
    description: str

    def available(self) -> tuple[bool, str]:
        """(usable here?, reason when not)."""
        ...

    def load(self, checkpoint: Checkpoint, *, n_threads: int, **options: Any) -> Engine:
        """Build an Engine from a parsed checkpoint (weights are memory-mapped arrays).

        ``options`` are backend-specific, except ``progress``: an optional callable
        ``progress(done, total)`` that a backend may call while it prepares the weights, and
        must otherwise ignore.
        """
        ...
