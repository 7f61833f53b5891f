"""OpenAI requests -> Model API arguments, Model API results -> OpenAI response objects.

The Model API already speaks OpenAI's message and tool shapes; what is left is naming
(``max_completion_tokens``), the parameters it has no counterpart for (rejected with a 400
naming them, never silently ignored) and the response envelopes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..completion import ChatCompletion, Completion
from ..logprobs import openai_chat_logprobs, openai_completion_logprobs
from ..options import OPTION_NAMES
from ..validation import MAX_TOP_LOGPROBS
from .errors import ApiError, unsupported
from .schema import ChatCompletionRequest, CompletionRequest, _Sampling


def _check_unsupported(req: _Sampling, max_choices: int) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(req, name):
            raise unsupported(name, "use repeat_penalty (a multiplicative penalty) instead")
    if req.logit_bias:
        raise unsupported("logit_bias")
    n = 1 if req.n is None else req.n
    if not 1 <= n <= max_choices:
        raise ApiError(
            400, f"n must be between 1 and {max_choices}, got {n}", param="n", code="invalid_value"
        )


def choices(req: _Sampling) -> int:
    return 1 if req.n is None else req.n


# Options a request does not carry under their own name: max_tokens is one of two fields
# (max_completion_tokens wins on chat), json_schema comes from response_format, logprobs
# from chat's logprobs + top_logprobs or the completions' logprobs count.
_MAPPED_OPTIONS = frozenset(("max_tokens", "json_schema", "logprobs"))
# OpenAI's limit on the completions endpoint's logprobs (chat allows MAX_TOP_LOGPROBS).
MAX_COMPLETION_LOGPROBS = 5
# Every other option is a request field of the same name (schema.py).
REQUEST_OPTIONS = tuple(sorted(OPTION_NAMES - _MAPPED_OPTIONS))


def sampling_options(req: _Sampling, max_tokens: int | None) -> dict[str, Any]:
    """The generate()/chat() options of a request (None: the model's default)."""
    options = {name: getattr(req, name) for name in REQUEST_OPTIONS}
    options["max_tokens"] = max_tokens
    return options


def _out_of_range(name: str, value: int, top: int) -> ApiError:
    return ApiError(
        400,
        f"{name} must be an integer between 0 and {top}, got {value}",
        param=name,
        code="invalid_value",
    )


def _chat_logprobs(req: ChatCompletionRequest) -> int | None:
    """The logprobs option of a chat request: None, or how many alternatives to list."""
    top = req.top_logprobs
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        raise _out_of_range("top_logprobs", top, MAX_TOP_LOGPROBS)
    if req.logprobs:
        return top or 0
    if top:
        raise ApiError(
            400, "top_logprobs needs logprobs: true", param="top_logprobs", code="invalid_value"
        )
    return None


def completion_options(req: CompletionRequest) -> dict[str, Any]:
    """The generate() options of a completion request (None: the model's default)."""
    n = req.logprobs
    if n is not None and not 0 <= n <= MAX_COMPLETION_LOGPROBS:
        raise _out_of_range("logprobs", n, MAX_COMPLETION_LOGPROBS)
    return {**sampling_options(req, req.max_tokens), "logprobs": n}


def text_offset(prompt: str | list[int]) -> int:
    """Where a completion's text starts for its logprobs' ``text_offset``: after a text
    prompt (as OpenAI counts), at 0 after token ids."""
    return len(prompt) if isinstance(prompt, str) else 0


def choice_options(options: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Options of choice ``index`` of an n>1 request: a seeded request stays reproducible
    while its choices differ (each choice draws from seed + index)."""
    out = dict(options)
    if index and out.get("seed") is not None:
        out["seed"] = out["seed"] + index
    return out


def _text_content(content: Any, where: str) -> Any:
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError(
            400,
            f"{where} must be a string or a list of text parts, got {type(content).__name__}",
            param=where,
            code="invalid_type",
        )
    texts = []
    for part in content:
        if not isinstance(part, Mapping) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
            raise ApiError(
                400,
                f"{where}: only text content parts are supported, got {kind!r}",
                param=where,
                code="unsupported_content",
            )
        texts.append(str(part.get("text", "")))
    return "".join(texts)


def _messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(messages):
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise ApiError(
                400,
                f"messages[{i}].role must be system, developer, user, assistant "
                f"or tool, got {role!r}",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
        msg = dict(m)
        if role == "developer":
            msg["role"] = "system"  # what chat templates know the instructions message as
        if "content" in msg:
            msg["content"] = _text_content(msg["content"], f"messages[{i}].content")
        if msg.get("content") is None and not msg.get("tool_calls"):
            msg["content"] = ""
        out.append(msg)
    return out


def _json_schema(response_format: Mapping[str, Any] | None) -> Any:
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return response_format.get("schema") or {"type": "object"}
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("schema", {}), Mapping):
            raise ApiError(
                400,
                "response_format.json_schema must be an object with a 'schema'",
                param="response_format",
                code="invalid_value",
            )
        # Every schema is enforced by constrained decoding: strict or not, the output obeys it.
        return spec.get("schema") or {"type": "object"}
    raise ApiError(
        400,
        f"response_format.type must be text, json_object or json_schema, got {kind!r}",
        param="response_format",
        code="invalid_value",
    )


def chat_arguments(req: ChatCompletionRequest, max_choices: int) -> dict[str, Any]:
    """Keyword arguments of ``Model.chat``/``stream_chat`` for a chat completion request."""
    _check_unsupported(req, max_choices)
    max_tokens = (
        req.max_completion_tokens if req.max_completion_tokens is not None else (req.max_tokens)
    )
    args: dict[str, Any] = {
        "messages": _messages(req.messages),
        **sampling_options(req, max_tokens),
        "logprobs": _chat_logprobs(req),
    }
    schema = _json_schema(req.response_format)
    if schema is not None:
        args["json_schema"] = schema
    if req.tools:
        args["tools"] = req.tools
        args["tool_choice"] = req.tool_choice or "auto"
        args["parallel_tool_calls"] = bool(req.parallel_tool_calls)
    elif req.tool_choice not in (None, "none", "auto"):
        raise ApiError(400, "tool_choice needs tools", param="tool_choice", code="invalid_value")
    return args


def completion_prompts(req: CompletionRequest, max_choices: int) -> list[str | list[int]]:
    """The prompts of a completion request (a list of strings or of token lists is a batch)."""
    _check_unsupported(req, max_choices)
    if req.echo:
        raise unsupported("echo")
    if req.suffix:
        raise unsupported("suffix")
    if req.best_of not in (None, 1):
        raise unsupported("best_of")
    p = req.prompt
    if isinstance(p, str):
        return [p]
    if not p:
        raise ApiError(400, "prompt is empty", param="prompt", code="invalid_value")
    if all(isinstance(x, int) for x in p):
        return [list(p)]  # type: ignore[arg-type]
    return list(p)  # type: ignore[arg-type]


def wire_tool_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls with their arguments as JSON text, as OpenAI sends them."""
    out = []
    for c in calls:
        fn = dict(c.get("function") or {})
        if not isinstance(fn.get("arguments"), str):
            fn["arguments"] = json.dumps(fn.get("arguments", {}), ensure_ascii=False)
        out.append({"id": c.get("id"), "type": "function", "function": fn})
    return out


def wire_usage(usages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The usage of one response (summed over its choices; the prompt is counted once)."""
    prompt = usages[0]["prompt_tokens"] if usages else 0
    completion = sum(u["completion_tokens"] for u in usages)
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    details = usages[0].get("prompt_tokens_details") if usages else None
    if details:
        out["prompt_tokens_details"] = dict(details)
    return out


def chat_response(
    rid: str, created: int, model: str, results: Sequence[ChatCompletion]
) -> dict[str, Any]:
    out_choices = []
    for i, r in enumerate(results):
        message: dict[str, Any] = {"role": "assistant", "content": r.message.get("content")}
        if r.tool_calls:
            message["content"] = None
            message["tool_calls"] = wire_tool_calls(r.tool_calls)
        logprobs = None if r.logprobs is None else openai_chat_logprobs(r.logprobs)
        out_choices.append(
            {"index": i, "message": message, "finish_reason": r.finish_reason, "logprobs": logprobs}
        )
    return {
        "id": rid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": out_choices,
        "usage": wire_usage([r.usage for r in results]),
    }


def completion_response(
    rid: str,
    created: int,
    model: str,
    results: Sequence[Completion],
    per_prompt: int,
    text_offsets: Sequence[int],
) -> dict[str, Any]:
    """``results`` hold ``per_prompt`` choices for each prompt, prompt by prompt;
    ``text_offsets[i]``: where choice i's text starts (``text_offset``)."""
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for k in range(0, len(results), per_prompt):
        u = wire_usage([r.usage for r in results[k : k + per_prompt]])
        for key in usage:
            usage[key] += u[key]
    return {
        "id": rid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": i,
                "text": r.text,
                "finish_reason": r.finish_reason,
                "logprobs": None
                if r.logprobs is None
                else openai_completion_logprobs(r.logprobs, offset),
            }
            for i, (r, offset) in enumerate(zip(results, text_offsets, strict=True))
        ],
        "usage": usage,
    }
