"""Settings shared by ChatBitnet and BitnetLLM: which model to load, and how to sample."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr, model_validator
from typing_extensions import Self

import bitnet_backend as bb
from bitnet_backend.options import OPTION_SPECS

from ._version import __version__

DEFAULT_MODEL_NAME = "bitnet-default"
# stop: LangChain passes it per call; logprobs: ChatBitnet spells it as ChatOpenAI does.
OPTION_NAMES_IN_ORDER = tuple(name for name in OPTION_SPECS if name not in ("stop", "logprobs"))


class BitnetParams(BaseModel):
    """Load and sampling settings; ``None`` keeps the checkpoint's own default."""

    model: str | None = Field(
        default=None,
        description="Checkpoint directory, Hugging Face hub id, or None for the embedded "
        "default model.",
    )
    backend: str = Field(default="auto", description="bitnet-backend backend name, or 'auto'.")
    n_threads: int | None = Field(
        default=None, gt=0, description="Worker threads (default: the CPUs this process may use)."
    )
    n_ctx: int | None = Field(
        default=None, gt=0, description="Context window in tokens (default: the model's maximum)."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=-1,
        description="Tokens per reply; -1: until the context window is full. None: the model's "
        "default (256).",
    )
    temperature: float | None = Field(default=None, ge=0.0, description="0 is greedy.")
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(default=None, gt=0.0)
    seed: int | None = Field(default=None, description="The same seed gives the same text.")
    stop: list[str] | None = Field(
        default=None, description="Strings that end a reply (not part of it)."
    )
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Further bitnet_backend.load options (preset, lm_head, weight_layout, ...).",
    )
    streaming: bool = Field(
        default=False,
        description="Generate through the stream even in invoke, so callbacks see every token.",
    )

    _model: bb.Model = PrivateAttr()

    @model_validator(mode="after")
    def _load_bitnet_model(self) -> Self:
        # At construction, so a bad path or checkpoint fails here and not at the first call;
        # kept, so calls without a model= override skip the shared cache's lookup.
        self._model = self._load(self.model)
        # LangChain's models record package versions for tracing (langchain-core >= 1.x).
        add_version: Callable[[str, str], None] | None = getattr(self, "_add_version", None)
        if add_version is not None:
            add_version("langchain-bitnet", __version__)
        return self

    @property
    def loaded_model(self) -> bb.Model:
        """The shared ``bitnet_backend.Model`` this object generates with."""
        return self._model

    @property
    def model_name(self) -> str:
        """The name replies are reported under: ``model``, or "bitnet-default"."""
        return self.model or DEFAULT_MODEL_NAME

    def get_token_ids(self, text: str) -> list[int]:
        """The model's own token ids of ``text`` (no special tokens): offline, no transformers.

        A ``custom_get_token_ids`` given to the constructor still takes precedence.
        """
        custom: Callable[[str], list[int]] | None = getattr(self, "custom_get_token_ids", None)
        if custom is not None:
            return custom(text)
        return self._model.tokenize(text, add_special=False)

    def _load(self, source: str | None) -> bb.Model:
        """The shared model for ``source`` under this object's load settings."""
        return bb.load_shared(source, self.backend, self.n_threads, self.n_ctx, self.model_kwargs)

    def _call_model(self, kwargs: dict[str, Any]) -> tuple[bb.Model, str]:
        """The model of one call and its name: a ``model=`` keyword overrides the field."""
        source = kwargs.pop("model", None)
        if source is None or source == self.model:
            return self._model, self.model_name
        return self._load(source), str(source)

    def _sampling(self) -> dict[str, Any]:
        """The sampling fields as generation options (None: the model's default).

        Every generation option this class has a field for, in declaration order; ``stop``
        is left to ``_generation_options``, where LangChain's per-call stop overrides it.
        """
        fields = type(self).model_fields
        return {name: getattr(self, name) for name in OPTION_NAMES_IN_ORDER if name in fields}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "backend": self.backend,
            "n_ctx": self.n_ctx,
            **self._sampling(),
        }

    def _generation_options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The fields, overridden by the call's keywords.

        Unknown keywords are left for the model, which raises TypeError naming them before
        any work.
        """
        options = {**self._sampling(), "stop": self.stop}
        options.update({k: v for k, v in kwargs.items() if v is not None})
        if stop is not None:
            options["stop"] = stop
        return options
