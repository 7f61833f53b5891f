"""Constrained decoding by JSON schema: schemas compiled with llguidance into token masks.

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
"""

from __future__ import annotations

import functools
import json
import re
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BitnetError, InvalidParameterError

if TYPE_CHECKING:
    import llguidance

    from ..tokenizer import Tokenizer

# Compact output: small models copy the layout of json.dumps, and fixed separators leave
# them no room to loop on whitespace.
JSON_LAYOUT: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


def llguidance_module() -> Any:
    """The llguidance package (InvalidParameterError when it is not installed)."""
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
        llg = llguidance_module()
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
        llg = llguidance_module()
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
    llg = llguidance_module()
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
