"""Rendering chat messages the way transformers' ``apply_chat_template`` does (same Jinja
environment, globals and filters), inside the bounded sandbox because templates come from
downloaded repositories."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils

from .sandbox import (
    BoundedSandbox,
    ChatTemplateError,
    TemplateLimits,
    bounded_filter,
    render_bounded,
)

# Older names under which a message's reasoning travels; templates read "reasoning_content"
# and gpt-oss ones read "thinking" (transformers fills both the same way).
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    variables: Mapping[str, Any] | None = None,
    limits: TemplateLimits | None = None,
) -> str:
    """Render ``messages`` with the template text ``template`` exactly as transformers does.

    ``variables`` are further template variables (special tokens, the caller's keywords).
    Any failure inside the template raises ChatTemplateError.
    """
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)):
        raise ChatTemplateError("messages must be a list of {'role': ..., 'content': ...} dicts")
    if len(messages) == 0:
        raise ChatTemplateError("cannot render an empty conversation")
    chat = []
    for m in messages:
        if not isinstance(m, Mapping):
            raise ChatTemplateError(f"chat messages must be dicts, got {m!r}")
        # Drop None values: many templates render a literal "None" for them (OpenAI-style
        # content=None) but handle a missing key.
        chat.append({k: v for k, v in m.items() if v is not None})
    try:
        chat = _alias_reasoning_fields(_plain_template_data(chat))
    except RecursionError:
        raise ChatTemplateError("messages are nested too deeply (or contain themselves)") from None
    if tools is not None:
        for t in tools:
            if not isinstance(t, Mapping):
                raise ChatTemplateError(f"tools must be JSON-schema dicts, got {t!r}")
    if documents is not None:
        for d in documents:
            if not isinstance(d, Mapping):
                raise ChatTemplateError("documents must be dicts with 'title' and 'text' keys")
    variables = _plain_template_data(dict(variables or {}))
    try:
        compiled = _compile_template(template)
        text = render_bounded(
            compiled,
            limits or TemplateLimits(),
            messages=chat,
            tools=_plain_template_data(list(tools) if tools is not None else None),
            documents=_plain_template_data(list(documents) if documents is not None else None),
            add_generation_prompt=add_generation_prompt,
            **variables,
        )
    except ChatTemplateError:
        raise
    except RecursionError:
        raise ChatTemplateError("chat template recursed too deeply") from None
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"chat template error: {exc}") from None
    except Exception as exc:  # foreign template code: any failure is the template's
        raise ChatTemplateError(f"chat template failed: {type(exc).__name__}: {exc}") from None
    if not text:
        raise ChatTemplateError("the chat template rendered an empty prompt")
    return text


def _plain_template_data(value: Any) -> Any:
    # Templates are untrusted code: they only ever see plain JSON-like data, never the caller's
    # rich objects (whose methods the sandbox does not know to be harmful).
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain_template_data(k): _plain_template_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_template_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_template_data(v) for v in value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return _plain_template_data(value.item())  # numpy scalars
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _plain_template_data(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _plain_template_data(dump())
    return f"<{type(value).__name__}>"


def _alias_reasoning_fields(chat: list[Any]) -> list[Any]:
    out = []
    for message in chat:
        if isinstance(message, dict):
            reasoning = next(
                (message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None
            )
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


class _GenerationTag(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: transformers' assistant-mask marker.

    Only the tag is needed here (templates using it must parse); its body renders as is.
    """

    tags = {"generation"}  # noqa: RUF012 (jinja2's own class attribute)

    def parse(self, parser: Any) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        call = self.call_method("_render")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, caller: Callable[[], str]) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise ChatTemplateError(str(message))


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # jinja2's own tojson escapes HTML characters; chat templates expect plain json.dumps.
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _TemplateDict:
    # dict() for templates without handing them the dict type itself.
    def __call__(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    # Namespaces refuse underscore attributes so templates cannot reach CPython internals.
    def __init__(*args: Any, **kwargs: Any) -> None:
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: object) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot set underscore attributes on a namespace ({name!r})"
            )


@lru_cache(maxsize=32)
def _compile_template(source: str) -> jinja2.Template:
    env = BoundedSandbox(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = bounded_filter("tojson", _tojson)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env.from_string(source)
