"""Constrained decoding: JSON schemas and the tool-call protocol.

JSON schemas
============

``generate(..., json_schema=SCHEMA)`` (and ``stream`` / ``chat`` / ``stream_chat``) compiles
SCHEMA with llguidance into a grammar over the model's own tokenizer. Before every sampled
token the grammar fills a uint32 token bitmask (bit ``t % 32`` of word ``t // 32`` set = token
``t`` allowed; written in native code into a buffer allocated once per generation) and the
session's sampler gives every other token -inf. So the output is always a prefix of a JSON
document valid against SCHEMA, whatever the weights say:

* end-of-sequence is allowed only where the document is complete; once no further byte can
  follow (the closing brace of an object, ``true``, ...) generation ends at once;
* a generation that ends that way has finish_reason "stop" and its text parses and validates;
  one cut by max_tokens (or the context window) has finish_reason "length" and its text is an
  incomplete document;
* output is compact JSON (``", "`` and ``": "`` separators, no other whitespace), properties in
  the order the schema lists them; a schema may override the layout with llguidance's
  ``"x-guidance"`` options;
* additional properties are allowed unless the schema says ``"additionalProperties": false``
  (JSON Schema semantics), tokens past the tokenizer's vocabulary are never allowed;
* stop strings are not applied to constrained output: the grammar decides where it ends.

SCHEMA is a dict, its JSON text, ``True`` (any JSON value) or a class with a
``model_json_schema()`` method (pydantic). Invalid and unsatisfiable schemas, and features
llguidance does not implement (``not``, ``if``/``then``/``else``, ``contains``,
``uniqueItems``, ``propertyNames``, ``dependentRequired``/``dependentSchemas``,
``unevaluatedProperties``, look-around in ``pattern``, unknown ``format`` values, ...) raise
InvalidParameterError naming the feature, before any model work.

Tool calls
==========

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
import functools
import hashlib
import json
import re
import secrets
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .completion import FinishReason
from .errors import BitnetError, InvalidParameterError

if TYPE_CHECKING:
    import llguidance

    from .tokenizer import Tokenizer

# Compact output: small models copy the layout of json.dumps, and fixed separators leave
# them no room to loop on whitespace.
JSON_LAYOUT: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Keys whose values are data, not subschemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = frozenset(("enum", "const", "default", "examples", "x-guidance"))

ToolMode = Literal["auto", "required", "none"]


# -- tokenizer and grammars -------------------------------------------------------------------


def _llguidance() -> Any:
    try:
        import llguidance
        import llguidance.numpy
    except ImportError:  # pragma: no cover - a declared dependency
        raise InvalidParameterError(
            "constrained decoding needs the llguidance package (pip install llguidance)"
        ) from None
    return llguidance


class Grammar:
    """A grammar compiled for one tokenizer; ``start()`` gives each generation its own state.

    Compiling checks the grammar, so an invalid schema fails here, before any model work.
    """

    def __init__(self, ll_tokenizer: llguidance.LLTokenizer, grammar: str, vocab_size: int):
        llg = _llguidance()
        self._ll_tokenizer = ll_tokenizer
        self.vocab_size = vocab_size
        self._template = llg.LLMatcher(ll_tokenizer, grammar, log_level=0)
        if self._template.is_error():
            raise _schema_error(self._template.get_error())
        # deep_copy on a shared matcher from several threads at once is not documented safe.
        self._lock = threading.Lock()

    @functools.cached_property
    def first_tokens(self) -> np.ndarray:
        """The ids allowed as the first token (computed once); InvalidParameterError when
        the grammar cannot even start.

        Computed twice: the matchers of one grammar share its lexer's expression budget, so
        a pattern too large for it (``a{1000000}``) fails only in the second matcher.
        """
        self.start().mask()
        bits = np.unpackbits(self.start().mask().view(np.uint8), bitorder="little")
        return np.flatnonzero(bits)

    def start(self) -> GrammarState:
        """A fresh matcher at the start of the grammar plus its mask buffer."""
        with self._lock:
            matcher = self._template.deep_copy()
        return GrammarState(matcher, self._ll_tokenizer.vocab_size, self.vocab_size)


class GrammarState:
    """One generation's position in a grammar: the next token mask, and tokens consumed."""

    __slots__ = ("_bitmask", "_fill", "_matcher", "mask_words")

    def __init__(self, matcher: llguidance.LLMatcher, tokenizer_size: int, vocab_size: int):
        import llguidance.numpy as llnp

        self._matcher = matcher
        self._fill = llnp.fill_next_token_bitmask
        n_words = (tokenizer_size + 31) // 32
        words = max(n_words, (vocab_size + 31) // 32)
        # Zero-initialised once: the words past the tokenizer stay zero, so ids the model has
        # but the tokenizer does not (padded embedding rows) are never allowed.
        buffer = np.zeros(words, dtype=np.int32)
        self._bitmask = buffer[:n_words].reshape(1, n_words)  # llguidance writes this view
        self.mask_words = buffer.view(np.uint32)

    def mask(self) -> np.ndarray:
        """Fill and return the uint32 bitmask of tokens allowed next (a reused buffer)."""
        self._fill(self._matcher, self._bitmask)  # native, without the GIL
        if self._matcher.is_error():  # the mask then allows only end-of-sequence
            raise BitnetError(f"constrained decoding failed: {self._error()}")
        return self.mask_words

    def _error(self) -> str:
        return str(self._matcher.get_error()).split("\n<state>", 1)[0]

    def consume(self, token: int) -> None:
        """Advance past a sampled token (one the last mask allowed)."""
        if not self._matcher.consume_token(int(token)):
            raise BitnetError(f"constrained decoding failed: {self._error()}")

    @property
    def finished(self) -> bool:
        """True once nothing but end-of-sequence can follow (the output is complete)."""
        return bool(self._matcher.is_stopped())

    @property
    def accepting(self) -> bool:
        """True when the output so far is complete (it may still go on)."""
        return bool(self._matcher.is_accepting())


class ConstraintCompiler:
    """Compiles JSON schemas and tool grammars for one tokenizer, with a small cache."""

    _CACHE_SIZE = 32

    def __init__(self, tokenizer: Tokenizer, eos_token_ids: Iterable[int], vocab_size: int):
        llg = _llguidance()
        spec = json.loads(tokenizer.path.read_text(encoding="utf-8"))
        # As llguidance.hf does: padding and truncation would change how text tokenizes.
        spec["padding"] = None
        spec["truncation"] = None
        n_tok = int(tokenizer.vocab_size)
        eos = [int(e) for e in eos_token_ids if 0 <= int(e) < n_tok]
        self.ll_tokenizer = llg.LLTokenizer(json.dumps(spec), eos_token=eos or None)
        self.eos_token_ids = frozenset(eos)
        self.vocab_size = vocab_size
        self._cache: dict[str, Grammar] = {}
        self._lock = threading.Lock()

    def grammar(self, grammar: str) -> Grammar:
        """The compiled form of an llguidance grammar string (cached)."""
        with self._lock:
            hit = self._cache.get(grammar)
        if hit is not None:
            return hit
        compiled = Grammar(self.ll_tokenizer, grammar, self.vocab_size)
        with self._lock:
            if len(self._cache) >= self._CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[grammar] = compiled
        return compiled

    def json_schema(self, schema: Any) -> Grammar:
        """Compile a JSON schema (see the module docstring for what is accepted)."""
        grammar = self.grammar(json_schema_grammar(schema))
        # A schema whose $ref only leads back to itself compiles to a grammar that allows
        # nothing but end-of-sequence: the output would be an empty "complete" reply.
        empty = InvalidParameterError(
            "json_schema admits no JSON value (does a $ref only refer to itself?)"
        )
        try:
            first = grammar.first_tokens[: len(self.eos_token_ids) + 1]
        except BitnetError as exc:
            reason = str(exc).removeprefix("constrained decoding failed: ")
            if reason.startswith("NoExtensionBias"):  # llguidance: no token can start it
                raise empty from None
            raise InvalidParameterError(f"json_schema cannot be compiled: {reason}") from None
        if not any(t not in self.eos_token_ids for t in first):
            raise empty
        return grammar


_COMPILERS: weakref.WeakKeyDictionary[Tokenizer, dict[Any, ConstraintCompiler]] = (
    weakref.WeakKeyDictionary()
)
_COMPILERS_LOCK = threading.Lock()


def compiler_for(
    tokenizer: Tokenizer, eos_token_ids: Sequence[int], vocab_size: int
) -> ConstraintCompiler:
    """The ConstraintCompiler of a tokenizer (built once: ~1 s for a 128k vocabulary)."""
    key = (tuple(eos_token_ids), vocab_size)
    with _COMPILERS_LOCK:
        found = _COMPILERS.get(tokenizer, {}).get(key)
    if found is not None:
        return found
    made = ConstraintCompiler(tokenizer, eos_token_ids, vocab_size)
    with _COMPILERS_LOCK:
        return _COMPILERS.setdefault(tokenizer, {}).setdefault(key, made)


def normalize_schema(schema: Any) -> dict[str, Any]:
    """A JSON schema as a dict from a dict, JSON text, True, or a pydantic model class."""
    if isinstance(schema, bool):
        if schema:
            return {}
        raise InvalidParameterError("json_schema false allows no value")
    dump = getattr(schema, "model_json_schema", None)
    if callable(dump):
        schema = dump()
    if isinstance(schema, (str, bytes)):
        try:
            schema = json.loads(schema)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidParameterError(f"json_schema is not valid JSON: {exc}") from None
        return normalize_schema(schema)
    if not isinstance(schema, Mapping):
        raise InvalidParameterError(
            "json_schema must be a dict, JSON text or a pydantic model, "
            f"got {type(schema).__name__}"
        )
    try:
        # Round trip: rejects what JSON cannot hold (NaN, sets, objects) with a clear message.
        out = json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"json_schema is not JSON data: {exc}") from None
    except RecursionError:
        raise InvalidParameterError(
            "json_schema is nested too deeply (or contains itself)"
        ) from None
    return dict(out)


def json_schema_grammar(schema: Any) -> str:
    """The llguidance grammar string for a JSON schema, in this module's JSON layout."""
    llg = _llguidance()
    normalized = normalize_schema(schema)
    try:
        return str(llg.LLMatcher.grammar_from_json_schema(normalized, defaults=JSON_LAYOUT))
    except ValueError as exc:
        raise _schema_error(str(exc)) from None


def _schema_error(message: str) -> InvalidParameterError:
    """llguidance's compile error as an InvalidParameterError that names the feature."""
    text = message.strip()
    m = re.search(r"Unimplemented keys: \[(.*?)\]", text)
    if m:
        keys = ", ".join(k.strip().strip('"') for k in m.group(1).split(","))
        return InvalidParameterError(f"json_schema uses unsupported feature(s): {keys}")
    m = re.search(r"Unknown format: (\S+)", text)
    if m:
        return InvalidParameterError(f"json_schema uses unsupported format: {m.group(1)}")
    if "regex parse error" in text:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        pattern = lines[1] if len(lines) > 1 else "?"
        reason = next((ln[6:].strip() for ln in lines if ln.startswith("error:")), text)
        return InvalidParameterError(f"json_schema pattern {pattern!r} is not supported: {reason}")
    first = " ".join(text.split())
    return InvalidParameterError(f"invalid json_schema: {first}")


# -- tools ------------------------------------------------------------------------------------


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
    llg = _llguidance()
    schema = tool_call_schema(tools, parallel)
    if mode == "required":
        try:
            return str(llg.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_LAYOUT))
        except ValueError as exc:
            raise _schema_error(str(exc)) from None
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
    return str(llg.LLMatcher.grammar_from_lark(lark))


def new_call_id(seed: str | None = None, index: int = 0) -> str:
    """A tool call id: ``call_`` + 24 hex digits, random, or derived from ``seed`` and ``index``.

    The ids of a reply are part of the next prompt, so random ones would make the turn after
    a tool result differ from run to run even with greedy decoding. Derived from the prompt
    and the call's position, they are the same for the same conversation and differ between
    conversations (and between turns of one, since each turn's prompt holds the last).
    """
    if seed is None:
        return "call_" + secrets.token_hex(12)
    return "call_" + hashlib.sha256(f"{index}\x00{seed}".encode()).hexdigest()[:24]


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


def template_source(tokenizer: Tokenizer, chat_template: Any, has_tools: bool) -> str | None:
    """The chat template text a render would use (as ``Tokenizer.apply_chat_template``)."""
    templates = tokenizer.chat_template
    if isinstance(templates, dict):
        if isinstance(chat_template, str):
            return templates.get(chat_template, chat_template)
        if has_tools and "tool_use" in templates:
            return templates["tool_use"]
        return templates.get("default")
    if isinstance(chat_template, str):
        return chat_template
    return templates


# Parsing a template costs milliseconds, on every chat call: a model has one or two templates.
@functools.lru_cache(maxsize=16)
def template_uses_tools(source: str | None) -> bool:
    """True when a chat template reads the ``tools`` variable."""
    if not source:
        return False
    import jinja2
    import jinja2.meta

    from .chat_template import BoundedSandbox

    try:
        # The analysis compiles the template, folding constants: a sandbox that bounds them
        # keeps '{{ 2 ** 2 ** 40 }}' from being computed here.
        ast = BoundedSandbox().parse(source)
        return "tools" in jinja2.meta.find_undeclared_variables(ast)
    except (jinja2.TemplateError, RecursionError):
        return False  # rendering reports the template's error


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


@dataclass
class _CallScan:
    """What ToolCallStream has seen of one call object."""

    id: str
    name: str | None = None
    announced: bool = False
    pending_args: list[str] = field(default_factory=list)


class ToolCallStream:
    """Incremental reading of a reply made under a tool grammar: text, or call deltas.

    ``feed(text)`` returns the deltas that text completes: ``{"content": ...}`` for a plain
    reply, ``{"tool_calls": [...]}`` pieces for a call (id and name once the name is known,
    then the arguments' JSON text as it arrives). ``finish(finish_reason)`` gives the final
    message and finish_reason. Leading whitespace is held until the first other character
    says which kind of reply this is. Call ids come from ``new_call_id(id_seed, index)``.
    """

    def __init__(
        self, *, parallel: bool = False, names: Iterable[str] = (), id_seed: str | None = None
    ) -> None:
        self.parallel = parallel
        self.names = frozenset(names)
        self.id_seed = id_seed
        self.kind: Literal["undecided", "text", "call"] = "undecided"
        self._raw: list[str] = []
        self._lead = ""
        self._calls: list[_CallScan] = []
        # JSON scanner state (call replies only).
        self._depth = 0
        self._call_depth = 1
        self._in_str = False
        self._esc = False
        self._str_buf: list[str] = []
        self._str_role: str | None = None  # "key" | "name" | None
        self._key: str | None = None
        self._after_colon = False
        self._args_call: _CallScan | None = None

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Deltas completed by ``text`` (the next piece of generated text)."""
        if not text:
            return []
        self._raw.append(text)
        if self.kind == "undecided":
            stripped = text.lstrip()
            if not stripped:
                self._lead += text
                return []
            if stripped[0] == "{" or (self.parallel and stripped[0] == "["):
                self.kind = "call"
                self._call_depth = 2 if stripped[0] == "[" else 1
                text = stripped
            else:
                self.kind = "text"
                text, self._lead = self._lead + text, ""
        if self.kind == "text":
            return [{"content": text}]
        return self._scan(text)

    def flush(self) -> str:
        """At the end: whitespace still held back (a reply of nothing else) as content."""
        if self.kind != "undecided":
            return ""
        self.kind = "text"
        held, self._lead = self._lead, ""
        return held

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return "".join(self._raw)

    def _scan(self, text: str) -> list[dict[str, Any]]:
        # Pieces in arrival order: a call's head (id, name) once its name is known, then runs
        # of its arguments' JSON text; consecutive runs of one call merge into one delta.
        pieces: list[dict[str, Any]] = []

        def args_text(call: _CallScan, ch: str) -> None:
            if not call.announced:
                call.pending_args.append(ch)
                return
            index = self._calls.index(call)
            last = pieces[-1] if pieces else None
            if last is not None and last["index"] == index and "id" not in last:
                last["function"]["arguments"] += ch
            else:
                pieces.append({"index": index, "function": {"arguments": ch}})

        for ch in text:
            if self._args_call is not None:
                args_text(self._args_call, ch)  # inside the arguments value: all of it
            if self._in_str:
                if self._esc:
                    self._esc = False
                elif ch == "\\":
                    self._esc = True
                elif ch == '"':
                    self._in_str = False
                    self._end_string(pieces)
                    continue
                if self._str_role is not None:
                    self._str_buf.append(ch)
                continue
            at_call_level = self._args_call is None and self._depth == self._call_depth
            if ch == '"':
                self._in_str = True
                self._str_buf = []
                self._str_role = None
                if at_call_level:
                    if not self._after_colon:
                        self._str_role = "key"
                    elif self._key == "name":
                        self._str_role = "name"
            elif ch in "{[":
                if at_call_level and self._after_colon and self._key == "arguments":
                    self._args_call = self._calls[-1]
                    args_text(self._args_call, ch)
                self._depth += 1
                if ch == "{" and self._depth == self._call_depth:
                    call_id = new_call_id(self.id_seed, len(self._calls))
                    self._calls.append(_CallScan(id=call_id))
                    self._key, self._after_colon = None, False
            elif ch in "}]":
                self._depth -= 1
                if self._args_call is not None and self._depth == self._call_depth:
                    self._args_call = None
            elif at_call_level:
                if ch == ":":
                    self._after_colon = True
                elif ch == ",":
                    self._after_colon, self._key = False, None
        return [{"tool_calls": [p]} for p in pieces]

    def _end_string(self, pieces: list[dict[str, Any]]) -> None:
        role, raw = self._str_role, "".join(self._str_buf)
        self._str_role = None
        if role is None:
            return
        try:
            value = json.loads(f'"{raw}"')
        except json.JSONDecodeError:
            value = raw
        if role == "key":
            self._key = value
        elif role == "name" and self._calls:
            call = self._calls[-1]
            call.name = value
            call.announced = True
            pieces.append(
                {
                    "index": len(self._calls) - 1,
                    "id": call.id,
                    "type": "function",
                    "function": {"name": value, "arguments": "".join(call.pending_args)},
                }
            )
            call.pending_args = []

    def finish(self, finish_reason: FinishReason) -> tuple[dict[str, Any], FinishReason]:
        """The assistant message and the finish_reason ("tool_calls" when a call was made)."""
        text = self.text
        if self.kind != "call":
            return {"role": "assistant", "content": text}, finish_reason
        if finish_reason != "stop":
            # Cut short: not a call, and the partial JSON is not passed off as one.
            return {"role": "assistant", "content": text}, finish_reason
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BitnetError(f"constrained tool call output is not JSON: {exc}") from None
        items = payload if isinstance(payload, list) else [payload]
        calls = []
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if self.names and name not in self.names:
                raise BitnetError(f"constrained tool call names an unknown tool {name!r}")
            call_id = self._calls[i].id if i < len(self._calls) else new_call_id(self.id_seed, i)
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": item.get("arguments", {})},
                }
            )
        return {"role": "assistant", "content": None, "tool_calls": calls}, "tool_calls"
