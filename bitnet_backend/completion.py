"""Result types of the public API: completions, chat completions, stream chunks, usage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

FinishReason = Literal["stop", "length", "tool_calls"]


class PromptTokensDetails(TypedDict):
    """Where the prompt tokens came from: ``cached_tokens`` were reused from the prefix cache."""

    cached_tokens: int


class _TokenCounts(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Usage(_TokenCounts, total=False):
    """Token accounting of one call (OpenAI's shape).

    ``prompt_tokens_details["cached_tokens"]`` says how many prompt tokens were not computed
    again but copied from the prefix cache; a generation reports it, other usages may not.
    """

    prompt_tokens_details: PromptTokensDetails


def make_usage(
    prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None
) -> Usage:
    """Usage of one call; ``cached_tokens`` (when given) adds ``prompt_tokens_details``."""
    usage = Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )
    if cached_tokens is not None:
        usage["prompt_tokens_details"] = PromptTokensDetails(cached_tokens=cached_tokens)
    return usage


@dataclass(frozen=True)
class Timings:
    """Where the time of one call went (model loading is not part of it).

    ``prompt_tokens`` counts the prompt tokens evaluated by this call: a prefix reused from
    the previous call's KV cache is not evaluated again and not counted. ``ttft_ms`` runs
    from the start of generation to the first sampled token; ``generation_ms`` from the end
    of the prompt evaluation to the end of generation. Results that differ only in their
    timings compare equal.
    """

    prompt_tokens: int
    prompt_ms: float
    generated_tokens: int
    generation_ms: float
    ttft_ms: float

    @property
    def prompt_tokens_per_second(self) -> float:
        return _rate(self.prompt_tokens, self.prompt_ms)

    @property
    def tokens_per_second(self) -> float:
        """Generation speed."""
        return _rate(self.generated_tokens, self.generation_ms)


def _rate(tokens: int, ms: float) -> float:
    return tokens * 1000.0 / ms if ms > 0 else 0.0


@dataclass(frozen=True)
class TokenLogprob:
    """The log-probability of one generated token, and of its likeliest alternatives.

    ``logprob`` is the natural log of the token's probability under the model's distribution
    at that position (see ``logprobs.py`` for exactly which logits). ``token`` is its text
    (its bytes decoded with replacement characters; a special token's text is empty) and
    ``bytes`` its raw bytes. ``top_logprobs`` lists the ``logprobs`` likeliest tokens of the
    position, likeliest first (ties: lower id first); the chosen token is among them unless
    sampling picked a less likely one. An alternative's own ``top_logprobs`` is empty.
    """

    token_id: int
    token: str
    bytes: bytes
    logprob: float
    top_logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Completion:
    """The result of ``Model.generate``.

    ``token_ids`` are the generated tokens (an end-of-sequence token is not included; the
    tokens of a matched stop string are, although its text is cut from ``text``).
    ``finish_reason`` is "stop" (end-of-sequence token, stop string, or complete JSON under a
    json_schema) or "length" (max_tokens or the context window reached). ``logprobs`` (when
    the call asked for them) holds one entry per token of ``token_ids``.
    """

    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings | None = field(default=None, compare=False)
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class CompletionChunk:
    """One piece of a streamed completion.

    ``text`` is always whole UTF-8 characters and never part of a stop string. The last chunk
    of a stream has ``finish_reason``, ``usage`` and ``timings`` set (its text may be empty).
    ``logprobs`` (when the call asked for them) holds one entry per token of ``token_ids``.
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    timings: Timings | None = field(default=None, compare=False)
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True)
class ChatCompletion:
    """The result of ``Model.chat``: ``message`` is ``{"role": "assistant", "content": ...}``.

    When the model called tools, ``message`` is ``{"role": "assistant", "content": None,
    "tool_calls": [{"id", "type": "function", "function": {"name", "arguments": dict}}]}`` and
    ``finish_reason`` is "tool_calls". ``logprobs``: as in ``Completion``.
    """

    message: dict[str, Any]
    token_ids: list[int]
    finish_reason: FinishReason
    usage: Usage
    timings: Timings | None = field(default=None, compare=False)
    logprobs: list[TokenLogprob] | None = None

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """The tool calls of the reply (empty when it is text)."""
        return list(self.message.get("tool_calls") or [])


@dataclass(frozen=True)
class ChatCompletionChunk:
    """One piece of a streamed chat reply; ``delta`` is ``{"role": ..., "content": ...}``.

    The first chunk carries the role; the last one has ``finish_reason``, ``usage`` and
    ``timings``. A
    tool call streams as ``delta["tool_calls"]`` pieces (OpenAI style: ``index``, then ``id``,
    ``type`` and ``function.name`` once, then ``function.arguments`` JSON text fragments); the
    last chunk's ``tool_calls`` holds the complete calls with parsed arguments. ``logprobs``:
    as in ``CompletionChunk``.
    """

    delta: dict[str, Any]
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None
    timings: Timings | None = field(default=None, compare=False)
    logprobs: list[TokenLogprob] | None = None

    @property
    def content(self) -> str:
        return str(self.delta.get("content") or "")
