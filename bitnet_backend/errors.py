"""Typed errors raised by bitnet-backend. Every user-facing failure is a BitnetError."""

from __future__ import annotations


class BitnetError(Exception):
    """Base class of every error this package raises on bad input or state."""


class CheckpointError(BitnetError):
    """A checkpoint is missing, partial, malformed, truncated or corrupt.

    ``path`` names the offending file or directory, ``reason`` says what is wrong with it.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class UnsupportedModelError(CheckpointError):
    """The checkpoint is readable but describes a model this package cannot run."""


class ContextOverflowError(BitnetError):
    """A sequence would grow past the context window (n_ctx)."""

    def __init__(self, needed: int, n_ctx: int) -> None:
        self.needed = needed
        self.n_ctx = n_ctx
        super().__init__(f"context overflow: {needed} tokens needed but n_ctx is {n_ctx}")


class InvalidParameterError(BitnetError, ValueError):
    """A parameter (sampling option, thread count, schema, ...) has an invalid value."""


class BackendNotFoundError(BitnetError):
    """No backend plugin with the requested name is installed or available."""


class QueueTimeoutError(BitnetError):
    """A request waited in the queue longer than the model's ``queue_timeout`` (seconds)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            f"the request waited {timeout:g} s in the queue without a free sequence "
            "(raise max_batch or kv_budget, or queue_timeout)"
        )


class NonFiniteOutputError(BitnetError):
    """The model computed NaN or infinite logits: its weights or the engine are broken, so
    no token can be chosen (greedy decoding would otherwise fall back to token 0)."""
