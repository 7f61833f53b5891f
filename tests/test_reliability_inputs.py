"""Bad generation inputs, schemas, messages and chat templates give typed errors before work.

Templates that used to hang or abort the process run in a child with a time and memory
limit (tests/isolated.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import BACKENDS
from isolated import run_isolated
from test_reliability_checkpoint import replace_tensor

import bitnet_backend as bb
from bitnet_backend.chat_template import TemplateLimits
from bitnet_backend.errors import ContextOverflowError, InvalidParameterError, NonFiniteOutputError
from bitnet_backend.shared import load_shared
from bitnet_backend.tokenizer import ChatTemplateError

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def model() -> Any:
    with bb.load() as m:
        yield m


# -- options and prompts ------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["top_k", "repeat_last_n"])
@pytest.mark.parametrize("value", [2**31, 2**63])
def test_int_options_past_the_engine_range_fail_at_call_time(
    model: bb.Model, option: str, value: int
) -> None:
    with pytest.raises(InvalidParameterError, match=option):
        model.generate("Hello", max_tokens=2, **{option: value})
    with pytest.raises(InvalidParameterError, match=option):
        model.stream("Hello", max_tokens=2, **{option: value})  # before iteration starts


def test_bytes_prompt_is_refused(model: bb.Model) -> None:
    with pytest.raises(InvalidParameterError, match="got bytes"):
        model.generate(b"hello", max_tokens=2)


@pytest.mark.parametrize(
    "text", ["abc\udc80def", b"\xff\xfe\xc3".decode("utf-8", "surrogateescape")]
)
def test_lone_surrogates_are_refused(model: bb.Model, text: str) -> None:
    with pytest.raises(InvalidParameterError, match="not valid Unicode"):
        model.generate(text, max_tokens=2)


def test_huge_prompt_is_refused_before_tokenizing() -> None:
    out = run_isolated(
        """
        import bitnet_backend as bb
        m = bb.load()
        m.encode_calls = 0
        real = m.tokenizer.encode
        def counting(*a, **k):
            m.encode_calls += 1
            return real(*a, **k)
        m.tokenizer.encode = counting
        try:
            m.generate("Once upon a time " * 600_000, max_tokens=2)
        except bb.ContextOverflowError as exc:
            report([exc.needed, exc.n_ctx, m.encode_calls])
        """,
        timeout=120,
    )
    needed, n_ctx, encode_calls = out["ok"]
    assert needed > n_ctx and encode_calls == 0


def test_prompt_that_fits_the_bound_is_still_tokenized(model: bb.Model) -> None:
    with pytest.raises(ContextOverflowError) as info:
        model.generate("Once upon a time " * 1000, max_tokens=2)
    assert info.value.needed == len(model.tokenize("Once upon a time " * 1000))


# -- NaN logits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "options",
    [{"temperature": 0}, {"temperature": 0.8, "seed": 1}, {"json_schema": {"type": "object"}}],
)
def test_nan_logits_raise_instead_of_picking_token_0(
    make_checkpoint: Callable[..., Path],
    tmp_path: Path,
    backend: str,
    options: dict[str, Any],
) -> None:
    d = Path(shutil.copytree(make_checkpoint(), tmp_path / "ckpt"))
    # Finite weights (bf16 max) whose products overflow: the final norm turns into inf/NaN.
    replace_tensor(d, "model.norm.weight", lambda a: np.full_like(a, 0x7F7F))
    with (
        bb.load(d, backend=backend) as m,
        pytest.warns(RuntimeWarning) if backend == "reference" else _nothing(),
        pytest.raises(NonFiniteOutputError, match="NaN or infinite logits"),
    ):
        m.generate("Hello", max_tokens=3, **options)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# -- schemas, messages, tools -------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
        {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"},
    ],
)
def test_self_referencing_schema_is_refused(model: bb.Model, schema: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError, match="admits no JSON value"):
        model.generate("Hi", json_schema=schema, max_tokens=5)


@pytest.mark.parametrize("pattern", ["^a{1000000}$", "^((a{100}){100}){100}$"])
def test_patterns_too_large_for_the_lexer_fail_before_generation(
    model: bb.Model, pattern: str
) -> None:
    schema = {"type": "string", "pattern": pattern}
    for _ in range(2):  # also once the grammar is cached
        with pytest.raises(InvalidParameterError, match="json_schema cannot be compiled"):
            model.generate("Hi", json_schema=schema, max_tokens=3)


def _nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def test_deep_schemas_messages_and_tool_args_are_typed(model: bb.Model) -> None:
    with pytest.raises(InvalidParameterError, match="nested too deeply"):
        model.generate("Hi", json_schema=_nested(5000), max_tokens=2)
    tool = {"type": "function", "function": {"name": "f", "parameters": _nested(5000)}}
    with pytest.raises(InvalidParameterError, match="nested too deeply"):
        model.chat(HI, tools=[tool], max_tokens=2)
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ChatTemplateError, match="nested too deeply"):
        model.chat([{"role": "user", "content": deep}], max_tokens=2)
    looped: dict[str, Any] = {"role": "user"}
    looped["content"] = looped
    with pytest.raises(ChatTemplateError, match="nested too deeply"):
        model.apply_chat_template([looped])


@pytest.mark.parametrize("content", [{"a": object()}, {1, 2}])
def test_tool_results_that_are_not_json_are_typed(model: bb.Model, content: object) -> None:
    history = [
        *HI,
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": content},
    ]
    tool = {"type": "function", "function": {"name": "f"}}
    with pytest.raises(InvalidParameterError, match="tool message contents are not JSON"):
        model.chat(history, tools=[tool], max_tokens=2)


# -- chat templates -----------------------------------------------------------------------------

RESOURCE_TEMPLATES = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "huge power": "{{ 2**(2**40) }}",
    "slice": "{{ [1]|slice(10**9)|list|length }}",
    "translate": "{{ 'a'.translate({97: 'b' * 10**9}) }}",
    "center filter": "{{ 'a'|center(10**9) }}",
    "indent": "{{ 'a\nb'|indent(10**9) }}",
    "repeat": "{{ 'a' * 10**8 }}",
    "percent width": "{{ '%0100000000d' % 1 }}",
    "format width": "{{ '{:>1000000000}'.format('a') }}",
    "center method": "{{ 'a'.center(10**9) }}",
    "doubling": "{% set ns = namespace(x='ab') %}{% for i in range(40) %}"
    "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "join": "{{ ''.join(['a' * 1000000] * 100) }}",
    "replace": "{{ 'abc'|replace('', 'x' * 1000000) }}",
    "tojson indent": "{{ messages|tojson(indent=10**9) }}",
    "star width": "{{ '%*d' % (10**9, 1) }}",
    "nested format width": "{{ '{:>{}}'.format('a', 10**9) }}",
    "ljust": "{{ 'a'.ljust(10**9) }}",
}


@pytest.mark.parametrize("name", sorted(RESOURCE_TEMPLATES))
def test_resource_hungry_templates_fail_typed_within_bounds(name: str) -> None:
    out = run_isolated(
        """
        import bitnet_backend as bb
        from bitnet_backend.chat_template import TemplateLimits
        m = bb.load()
        m.tokenizer.template_limits = TemplateLimits(max_seconds=2.0)
        hi = [{"role": "user", "content": "hi"}]
        errors = []
        for call in (
            lambda: m.apply_chat_template(hi, chat_template=template),
            lambda: m.chat(hi, template_kwargs={"chat_template": template}, max_tokens=2),
        ):
            try:
                call()
                errors.append(None)
            except bb.BitnetError as exc:
                errors.append([type(exc).__name__, str(exc)])
        report(errors)
        """,
        template=RESOURCE_TEMPLATES[name],
        timeout=120,
        memory=2 * 1024**3,
    )
    for kind, message in out["ok"]:
        assert kind == "ChatTemplateError", message
        assert "TemplateLimits" in message or "bits" in message


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{{ ('a'*30+'b') is match('(a+)+$') }}", "No test named 'match'"),
        ("{{ messages.__class__ }}", "rendered an empty prompt"),
        ("{% if %}", "chat template error"),
        ("{{ nothing.here }}", "is undefined"),
        ("{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}", "recursed too deeply"),
    ],
)
def test_every_template_failure_is_a_chat_template_error(
    model: bb.Model, template: str, match: str
) -> None:
    with pytest.raises(ChatTemplateError, match=match):
        model.apply_chat_template(HI, chat_template=template)
    with pytest.raises(ChatTemplateError, match=match):
        model.chat(HI, template_kwargs={"chat_template": template}, max_tokens=2)


@pytest.mark.parametrize(
    ("template", "text"),
    [
        ("{{ 'Date 20240101: %s' % 'x' }}", "Date 20240101: x"),
        ("{{ '{}'.format(1700000000) }}", "1700000000"),
        ("{{ '%d' % 1700000000 }}", "1700000000"),
        ("{{ '%5.2f|%-3s'|format(3.14159, 'ab') }}", " 3.14|ab "),
        ("{{ '{:>{}}'.format('a', 5) }}", "    a"),
        ("{{ 'abc'|truncate(10**9) }}", "abc"),
    ],
)
def test_ordinary_numbers_and_widths_still_render(
    model: bb.Model, template: str, text: str
) -> None:
    assert model.apply_chat_template(HI, chat_template=template) == text


def test_template_limits_are_configurable(model: bb.Model) -> None:
    template = "{{ 'ab' * 600 }}{% for m in messages %}{{ m.content }}{% endfor %}"
    assert len(model.apply_chat_template(HI, chat_template=template)) == 1202
    saved = model.tokenizer.template_limits
    model.tokenizer.template_limits = TemplateLimits(max_chars=1000)
    try:
        with pytest.raises(ChatTemplateError, match="max_chars 1000"):
            model.apply_chat_template(HI, chat_template=template)
    finally:
        model.tokenizer.template_limits = saved
    with pytest.raises(InvalidParameterError, match="max_seconds"):
        TemplateLimits(max_seconds=0)


# -- shared models ------------------------------------------------------------------------------


def test_closed_shared_model_is_replaced() -> None:
    first = load_shared(None, n_ctx=64)
    assert load_shared(None, n_ctx=64) is first
    first.close()
    second = load_shared(None, n_ctx=64)
    assert second is not first and not second.closed
    assert second.generate("Hi", max_tokens=1, temperature=0).usage["completion_tokens"] == 1


@pytest.mark.parametrize("ids", [None, "abc", 5, b"\x01\x02"])
def test_logits_of_something_not_ids_is_typed(model: bb.Model, ids: Any) -> None:
    with pytest.raises(InvalidParameterError):
        model.logits(ids)


def test_empty_and_overlong_sources_are_typed() -> None:
    with pytest.raises(InvalidParameterError, match="empty string"):
        bb.load("")
    with pytest.raises(bb.CheckpointError, match="cannot access"):
        bb.load("x" * 10_000)


def test_exact_logits_past_the_engine_range_is_typed() -> None:
    with pytest.raises(InvalidParameterError, match="exact_logits"):
        bb.load(exact_logits=2**31)


def test_info_of_a_closed_model_is_typed() -> None:
    m = bb.load()
    m.close()
    with pytest.raises(bb.BitnetError, match="closed"):
        _ = m.info


@pytest.mark.parametrize("source", ["a/b\n", "a/b@main\n", "a/b/model.gguf\n"])
def test_a_hub_id_with_a_trailing_newline_is_not_one(source: str) -> None:
    from bitnet_backend.checkpoints.hub import parse_repo_id

    assert parse_repo_id(source) is None
