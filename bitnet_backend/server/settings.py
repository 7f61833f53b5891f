"""Options of the server: what to serve, where, and the limits that protect it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..errors import InvalidParameterError

API_KEY_ENV = "BITNET_API_KEY"
DEFAULT_MODEL_NAME = "bitnet"
# Requests generating at once per model when neither the settings nor the model say: the
# batch size a batching engine serves well on a small machine.
DEFAULT_PARALLEL = 8


def parse_model_spec(spec: str) -> tuple[str, str | None]:
    """``NAME=SOURCE`` or ``SOURCE`` -> (served name, source); the name defaults to the
    source's last path component, so clients ask for ``bitnet-b1.58-2B-4T`` rather than a
    full path."""
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidParameterError(f"--model needs NAME=SOURCE or SOURCE, got {spec!r}")
    name, sep, source = spec.partition("=")
    if sep and name and source and "/" not in name and os.sep not in name:
        return name, source
    return PurePath(spec.rstrip("/\\")).name or spec, spec


@dataclass(frozen=True)
class ServerSettings:
    """Everything ``create_app`` needs; the ``bitnet serve`` flags map onto these fields.

    ``models`` maps served names to checkpoint sources (None: the bundled model).
    ``parallel`` requests per model generate at once (None: the model's batch size when it
    reports one, else DEFAULT_PARALLEL) and up to ``max_queue`` more wait;
    beyond that a request gets 503 at once, so a flood cannot grow memory without bound.
    ``max_choices`` bounds ``n``, ``max_prompts`` the prompts of one /v1/completions request
    and ``max_embedding_inputs`` the inputs of one /v1/embeddings request.
    ``api_key`` (or the BITNET_API_KEY environment variable, read by ``bitnet serve``)
    makes every endpoint but /health require ``Authorization: Bearer <key>``.
    """

    models: Mapping[str, str | None] = field(default_factory=lambda: {DEFAULT_MODEL_NAME: None})
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    backend: str = "auto"
    n_threads: int | None = None
    n_ctx: int | None = None
    load_options: Mapping[str, Any] = field(default_factory=dict)
    parallel: int | None = None
    max_queue: int = 64
    max_body_bytes: int = 8 * 1024 * 1024
    max_choices: int = 8
    max_prompts: int = 32
    max_embedding_inputs: int = 2048

    def __post_init__(self) -> None:
        if not self.models:
            raise InvalidParameterError("at least one model must be served")
        for name in self.models:
            if not isinstance(name, str) or not name:
                raise InvalidParameterError(f"model names must be non-empty strings: {name!r}")
        for what, minimum in (
            ("port", 0),
            ("parallel", 1),
            ("max_queue", 0),
            ("max_body_bytes", 1024),
            ("max_choices", 1),
            ("max_prompts", 1),
            ("max_embedding_inputs", 1),
        ):
            v = getattr(self, what)
            if what == "parallel" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise InvalidParameterError(f"{what} must be an integer >= {minimum}, got {v!r}")
        if self.api_key is not None and not self.api_key:
            raise InvalidParameterError("api_key must not be empty (leave it unset instead)")

    @property
    def slots(self) -> int:
        """``parallel``, or its default when it is left to the model (before one is loaded)."""
        return self.parallel or DEFAULT_PARALLEL
