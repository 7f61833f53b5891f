"""The tool-call protocol: tools and tool_choice of a chat call, their grammar and prompt.

``chat(messages, tools=[...], tool_choice=...)`` lets the model call functions. A tool is an
OpenAI-style dict ``{"type": "function", "function": {"name", "description", "parameters"}}``
or the bare ``{"name", "description", "parameters"}``; ``parameters`` is the JSON schema of the
arguments object (default: any object). Names are 1-64 characters of ``[A-Za-z0-9_-]``.

The model's output for a call is one JSON object::

    {"name": "<tool name>", "arguments": {<arguments valid against the tool's parameters>}}

or, with ``parallel_tool_calls=True``, also a non-empty JSON list of such objects. Decoding is
constrained by a grammar built from the tools' parameter schemas (``anyOf`` over the tools,
each name a ``const``):

* ``tool_choice="required"``: the output is a call to one of the tools;
* ``tool_choice={"name": N}`` (or ``{"type": "function", "function": {"name": N}}``): the
  output is a call to N;
* ``tool_choice="auto"`` (default): either a plain-text answer or a call, and the model
  chooses: a reply whose first non-whitespace character is ``{`` (or ``[`` with parallel
  calls) is a call and must be complete and valid; any other reply is plain text (so a
  plain answer never starts with ``{``);
* ``tool_choice="none"``: no tools are shown and output is unconstrained.

The result is a ChatCompletion whose message is ``{"role": "assistant", "content": None,
"tool_calls": [{"id": "call_<random>", "type": "function", "function": {"name": ...,
"arguments": {...}}}]}`` with finish_reason "tool_calls" when a call was made, else the usual
text message. ``stream_chat`` yields content deltas for text and, for calls, OpenAI-style
``{"tool_calls": [{"index", "id", "type", "function": {"name", "arguments": <JSON text
fragment>}}]}`` deltas (the id and name first, then the arguments' JSON text piece by piece);
the last chunk carries the complete parsed ``tool_calls``.

How tools reach the prompt
--------------------------

When the model's chat template uses a ``tools`` variable, the tools (OpenAI form) and the
messages as given (assistant messages with ``tool_calls``, ``role: "tool"`` results) are
handed to the template. Otherwise this fixed format is used:

* a system message (appended to the first system message, or inserted before the first
  message) reading::

      You can call these tools. Each line describes one tool as JSON: its name, what it does
      and the JSON schema of its arguments.
      {"name": "get_weather", "description": "...", "parameters": {...}}
      ...
      To call a tool, reply with only a JSON object of the form {"name": <tool name>,
      "arguments": <arguments object>}. Otherwise reply in plain text.

  (with "required": "You must call one of these tools: reply with only ...", with a named
  tool: "You must call the tool "N": reply with only ...", with parallel calls: "To call
  several tools at once, reply with a JSON list of such objects.");
* an assistant message with ``tool_calls`` becomes its content (if any), a newline, then the
  call JSON exactly as the model writes it (one object, or a list for several calls);
* a ``role: "tool"`` message becomes a user message ``Result of tool call <id> (<name>):``
  followed by a newline and the content (a non-string content is written as JSON).

Previous turns with tool calls render this way also when ``tool_choice="none"``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import InvalidParameterError
from .grammar import (
    JSON_LAYOUT,
    ConstraintCompiler,
    Grammar,
    json_schema_grammar,
    llguidance_module,
    normalize_schema,
)
from .tool_stream import ToolCallStream

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Keys whose values are data, not subschemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = frozenset(("enum", "const", "default", "examples", "x-guidance"))

ToolMode = Literal["auto", "required", "none"]


@dataclass(frozen=True)
class Tool:
    """One callable tool: its name, description and arguments schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        """The OpenAI form handed to chat templates."""
        fn: dict[str, Any] = {"name": self.name}
        if self.description:
            fn["description"] = self.description
        fn["parameters"] = self.parameters
        return {"type": "function", "function": fn}

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


def normalize_tools(tools: Sequence[Mapping[str, Any]] | None) -> tuple[Tool, ...]:
    """Validate OpenAI-style or bare tool dicts into Tool objects (names unique)."""
    if tools is None:
        return ()
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise InvalidParameterError("tools must be a list of tool dicts")
    out: list[Tool] = []
    for t in tools:
        if not isinstance(t, Mapping):
            raise InvalidParameterError(f"a tool must be a dict, got {t!r}")
        fn: Any = t
        if t.get("type", "function") != "function":
            raise InvalidParameterError(f"unsupported tool type {t.get('type')!r}")
        if "function" in t:
            fn = t["function"]
            if not isinstance(fn, Mapping):
                raise InvalidParameterError(f"tool 'function' must be a dict, got {fn!r}")
        name = fn.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidParameterError(
                f"tool names must be 1-64 characters of [A-Za-z0-9_-], got {name!r}"
            )
        desc = fn.get("description") or ""
        if not isinstance(desc, str):
            raise InvalidParameterError(f"tool {name!r}: description must be a string")
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        params = normalize_schema(params)
        if params.get("type", "object") != "object":
            raise InvalidParameterError(f"tool {name!r}: parameters must describe an object")
        out.append(Tool(name, desc, params))
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidParameterError(f"duplicate tool name(s): {', '.join(dup)}")
    return tuple(out)


def _rebase_refs(schema: Any, base: str) -> Any:
    """Copy of ``schema`` with local ``$ref``s ("#...") moved under the pointer ``base``."""
    if isinstance(schema, list):
        return [_rebase_refs(v, base) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "$ref" and isinstance(v, str) and v.startswith("#"):
            out[k] = "#" + base + v[1:]
        elif k in _DATA_KEYWORDS:
            out[k] = copy.deepcopy(v)
        else:
            out[k] = _rebase_refs(v, base)
    return out


def tool_call_schema(tools: Sequence[Tool], parallel: bool = False) -> dict[str, Any]:
    """The JSON schema of the model's call output: one call (or a list) to one of ``tools``.

    Each tool's parameters live under ``$defs`` (their own ``$ref``s rebased there), so
    schemas with ``$defs`` or recursion (pydantic's output) keep working.
    """
    if not tools:
        raise InvalidParameterError("a tool call needs at least one tool")
    defs: dict[str, Any] = {}
    branches = []
    for i, t in enumerate(tools):
        key = f"tool{i}"
        defs[key] = _rebase_refs(t.parameters, f"/$defs/{key}")
        branches.append(
            {
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": {"$ref": f"#/$defs/{key}"}},
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
        )
    defs["call"] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    root: dict[str, Any] = {"$ref": "#/$defs/call"}
    if parallel:
        root = {
            "anyOf": [root, {"type": "array", "items": {"$ref": "#/$defs/call"}, "minItems": 1}]
        }
    return {**root, "$defs": defs}


def tool_grammar(tools: Sequence[Tool], mode: ToolMode, parallel: bool = False) -> str:
    """The llguidance grammar for ``mode`` "required" (a call) or "auto" (text or a call)."""
    schema = tool_call_schema(tools, parallel)
    if mode == "required":
        return json_schema_grammar(schema)
    if mode != "auto":
        raise InvalidParameterError(f"no grammar for tool_choice {mode!r}")
    # Plain text is anything whose first non-whitespace character cannot start a call.
    first = r"[^{\[\s]" if parallel else r"[^{\s]"
    body = json.dumps({**schema, "x-guidance": JSON_LAYOUT})
    lark = (
        "start: TEXT | call\n"
        f"TEXT: /\\s*{first}(.|\\n)*/\n"
        "call: WS? body\n"
        "WS: /\\s+/\n"
        f"body: %json {body}\n"
    )
    return str(llguidance_module().LLMatcher.grammar_from_lark(lark))


@dataclass(frozen=True)
class ToolProtocol:
    """What one chat request asked of tools: which are shown, which may be called, and how."""

    tools: tuple[Tool, ...]
    mode: ToolMode
    allowed: tuple[Tool, ...]
    parallel: bool = False

    @classmethod
    def from_request(
        cls,
        tools: Sequence[Mapping[str, Any]] | None,
        tool_choice: Any = "auto",
        parallel_tool_calls: bool = False,
    ) -> ToolProtocol:
        """Validate ``tools`` / ``tool_choice`` / ``parallel_tool_calls`` of a chat call."""
        specs = normalize_tools(tools)
        if not isinstance(parallel_tool_calls, bool):
            raise InvalidParameterError("parallel_tool_calls must be True or False")
        if tool_choice is None:
            tool_choice = "auto"
        if isinstance(tool_choice, str):
            if tool_choice not in ("auto", "required", "none"):
                raise InvalidParameterError(
                    "tool_choice must be 'auto', 'required', 'none' or {'name': ...}, "
                    f"got {tool_choice!r}"
                )
            if tool_choice == "required" and not specs:
                raise InvalidParameterError("tool_choice 'required' needs tools")
            mode: ToolMode = tool_choice  # type: ignore[assignment]
            allowed = specs if mode != "none" else ()
            return cls(specs, mode if specs else "none", allowed, parallel_tool_calls)
        if isinstance(tool_choice, Mapping):
            fn = tool_choice.get("function", tool_choice)
            name = fn.get("name") if isinstance(fn, Mapping) else None
            chosen = [t for t in specs if t.name == name]
            if not chosen:
                raise InvalidParameterError(
                    f"tool_choice names {name!r}, which is not among the tools "
                    f"({', '.join(t.name for t in specs) or 'none given'})"
                )
            return cls(specs, "required", tuple(chosen), parallel_tool_calls)
        raise InvalidParameterError(f"tool_choice must be a string or a dict, got {tool_choice!r}")

    @property
    def active(self) -> bool:
        """True when the output is constrained by tools (auto or required)."""
        return self.mode != "none"

    def grammar(self, compiler: ConstraintCompiler) -> Grammar | None:
        if not self.active:
            return None
        return compiler.grammar(tool_grammar(self.allowed, self.mode, self.parallel))

    def system_prompt(self) -> str:
        """The tool description of the fallback format (see the module docstring)."""
        lines = [
            "You can call these tools. Each line describes one tool as JSON: its name, "
            "what it does and the JSON schema of its arguments."
        ]
        lines += [json.dumps(t.summary(), ensure_ascii=False) for t in self.tools]
        how = (
            'reply with only a JSON object of the form {"name": <tool name>, '
            '"arguments": <arguments object>}.'
        )
        if self.mode == "auto":
            lines.append(f"To call a tool, {how} Otherwise reply in plain text.")
        elif len(self.allowed) == 1 and len(self.tools) > 1:
            lines.append(f'You must call the tool "{self.allowed[0].name}": {how}')
        else:
            lines.append(f"You must call one of these tools: {how}")
        if self.parallel:
            lines.append("To call several tools at once, reply with a JSON list of such objects.")
        return "\n".join(lines)

    def prompt(
        self, messages: Sequence[Mapping[str, Any]], template_uses_tools: bool
    ) -> tuple[Any, list[dict[str, Any]] | None]:
        """The messages and the ``tools`` argument to hand to the chat template."""
        shown = [t.openai() for t in self.tools] if self.active and template_uses_tools else None
        if template_uses_tools or not isinstance(messages, list | tuple):
            return messages, shown  # the template checks (and reports) bad messages itself
        out = render_tool_history(messages)
        if self.active:
            prompt = self.system_prompt()
            if out and isinstance(out[0], dict) and out[0].get("role") == "system":
                head = out[0].get("content") or ""
                out[0] = {**out[0], "content": f"{head}\n\n{prompt}" if head else prompt}
            else:
                out.insert(0, {"role": "system", "content": prompt})
        return out, None

    def stream(self, id_seed: str | None = None) -> ToolCallStream:
        """A parser of this request's reply, fed text as it is generated.

        ``id_seed`` (the prompt) makes the call ids reproducible; see ``new_call_id``.
        """
        return ToolCallStream(
            parallel=self.parallel, names={t.name for t in self.allowed}, id_seed=id_seed
        )


def _call_text(calls: Sequence[Mapping[str, Any]]) -> str:
    objs = []
    for c in calls:
        fn = c.get("function", c) if isinstance(c, Mapping) else {}
        args = fn.get("arguments", {}) if isinstance(fn, Mapping) else {}
        if isinstance(args, str):
            with contextlib.suppress(json.JSONDecodeError):  # else kept as the caller wrote it
                args = json.loads(args)
        name = fn.get("name") if isinstance(fn, Mapping) else None
        objs.append({"name": name, "arguments": args})
    payload: Any = objs[0] if len(objs) == 1 else objs
    return _json_text(payload, "tool call arguments")


def _json_text(value: Any, what: str) -> str:
    """json.dumps of caller data, with typed errors for what JSON cannot hold."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"{what} are not JSON data: {exc}") from None
    except RecursionError:
        raise InvalidParameterError(
            f"{what} are nested too deeply (or contain themselves)"
        ) from None


def render_tool_history(messages: Sequence[Any]) -> list[Any]:
    """Rewrite tool calls and tool results as plain messages (the fallback format)."""
    names: dict[str, str] = {}
    out: list[Any] = []
    for m in messages:
        if not isinstance(m, Mapping):
            out.append(m)  # the template reports the bad message
            continue
        role = m.get("role")
        calls = m.get("tool_calls")
        if role == "assistant" and calls:
            if not isinstance(calls, Sequence):
                raise InvalidParameterError("tool_calls must be a list")
            for c in calls:
                fn = c.get("function", c) if isinstance(c, Mapping) else None
                if isinstance(fn, Mapping) and isinstance(c, Mapping) and c.get("id"):
                    names[str(c["id"])] = str(fn.get("name"))
            text = m.get("content") or ""
            body = _call_text(calls)
            rest = {k: v for k, v in m.items() if k not in ("tool_calls", "content")}
            out.append({**rest, "content": f"{text}\n{body}" if text else body})
        elif role == "tool":
            call_id = m.get("tool_call_id")
            name = m.get("name") or names.get(str(call_id), "")
            content = m.get("content")
            if not isinstance(content, str):
                content = _json_text(content, "tool message contents")
            what = " ".join(x for x in (str(call_id or ""), f"({name})" if name else "") if x)
            out.append(
                {"role": "user", "content": f"Result of tool call {what}:\n{content}".strip()}
            )
        else:
            out.append(dict(m))
    return out
