"""Tokenizer and chat templates agree with transformers' AutoTokenizer on the same files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bitnet_backend.testing import write_checkpoint
from bitnet_backend.tokenizer import ChatTemplateError, Tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = [
    "Hello world",
    "",
    " leading space and trailing space ",
    "héllo 你好 🤖 — naïve café",
    "Numbers 12345 and 3.14159, punctuation!?",
    "line one\nline two\r\n\ttabbed",
    "a<|eot_id|>b",
    "User: Hello, who are you?",
]

CONVERSATIONS = [
    [{"role": "user", "content": "Hi there"}],
    [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "  What is 2+2?  "},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3? 你好"},
    ],
]

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("tok") / "ckpt")


@pytest.fixture(scope="module")
def ours(ckpt: Path) -> Tokenizer:
    return Tokenizer.from_dir(ckpt)


@pytest.fixture(scope="module")
def theirs(ckpt: Path):
    return transformers.AutoTokenizer.from_pretrained(str(ckpt))


def tokenizer_copy(ckpt: Path, dest: Path, **config_changes: object) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(ckpt / name, dest / name)
    cfg = json.loads((dest / "tokenizer_config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            cfg.pop(key, None)
        else:
            cfg[key] = value
    (dest / "tokenizer_config.json").write_text(json.dumps(cfg))
    return dest


@pytest.mark.parametrize("add_special", [True, False])
@pytest.mark.parametrize("text", TEXTS)
def test_encode_matches_transformers(ours, theirs, text, add_special):
    assert ours.encode(text, add_special=add_special) == theirs.encode(
        text, add_special_tokens=add_special
    )


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("text", TEXTS)
def test_decode_matches_transformers(ours, theirs, text, skip):
    ids = theirs.encode(text)
    assert ours.decode(ids, skip_special=skip) == theirs.decode(ids, skip_special_tokens=skip)


@pytest.mark.parametrize("text", [t for t in TEXTS if "<|" not in t])
def test_decode_of_encode_round_trips(ours, text):
    assert ours.decode(ours.encode(text)) == text


@pytest.mark.parametrize("text", [t for t in TEXTS if "<|" not in t])
def test_token_bytes_concatenate_to_the_utf8_text(ours, text):
    ids = ours.encode(text, add_special=False)
    assert b"".join(ours.token_bytes[i] for i in ids) == text.encode("utf-8")


def test_multibyte_characters_span_several_tokens(ours):
    # The premise of the UTF-8 streaming tests: some token holds only part of a character.
    ids = ours.encode("你好🤖", add_special=False)
    partial = [i for i in ids if _incomplete_utf8(ours.token_bytes[i])]
    assert partial


def _incomplete_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_special_tokens_have_no_stream_bytes_and_known_ids(ours):
    assert ours.bos_token == "<|begin_of_text|>"
    assert ours.bos_token_id == ours.token_to_id("<|begin_of_text|>")
    assert ours.token_to_id("<|eot_id|>") in ours.eos_token_ids
    for i in ours.special_ids:
        assert ours.token_bytes[i] == b""


def test_text_starting_with_bos_gets_a_single_bos(ours):
    bos = ours.bos_token_id
    ids = ours.encode("<|begin_of_text|>Hello")
    assert ids[0] == bos and ids[1] != bos
    assert ids[1:] == ours.encode("Hello", add_special=False)


def test_post_processor_decides_bos_like_transformers(ckpt, tmp_path):
    # transformers keeps the BOS of tokenizer.json's post-processor even when
    # tokenizer_config.json says add_bos_token: false.
    d = tokenizer_copy(ckpt, tmp_path / "nobos", add_bos_token=False)
    ours = Tokenizer.from_dir(d)
    theirs = transformers.AutoTokenizer.from_pretrained(str(d))
    for text in ("Hello world", ""):
        assert ours.encode(text) == theirs.encode(text)


def without_post_processor(ckpt: Path, dest: Path, **config_changes: object) -> Path:
    d = tokenizer_copy(ckpt, dest, **config_changes)
    raw = json.loads((d / "tokenizer.json").read_text())
    raw["post_processor"] = None
    (d / "tokenizer.json").write_text(json.dumps(raw))
    return d


def test_bos_is_prepended_when_the_post_processor_adds_none(ckpt, tmp_path):
    tok = Tokenizer.from_dir(without_post_processor(ckpt, tmp_path / "nopp"))
    ids = tok.encode("Hello world")
    assert ids[0] == tok.bos_token_id
    assert ids[1:] == tok.encode("Hello world", add_special=False)
    assert tok.encode("<|begin_of_text|>Hello world") == ids


def test_add_bos_token_false_without_post_processor_adds_no_bos(ckpt, tmp_path):
    d = without_post_processor(ckpt, tmp_path / "nopp_nobos", add_bos_token=False)
    tok = Tokenizer.from_dir(d)
    assert tok.encode("Hello world") == tok.encode("Hello world", add_special=False)


@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("conversation", CONVERSATIONS)
def test_checkpoint_chat_template_matches_transformers(
    ours, theirs, conversation, add_generation_prompt
):
    expected = theirs.apply_chat_template(
        conversation, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    got = ours.apply_chat_template(conversation, add_generation_prompt=add_generation_prompt)
    assert got == expected
    assert got.startswith("<|begin_of_text|>")


# Hand-written templates exercising what transformers' environment provides.
LOOP_CONTROLS = (
    "{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}"
    "{% if loop.index > 3 %}{% break %}{% endif %}"
    "<{{ m.role }}>{{ m.content | trim }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)
ALTERNATING = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
    "{% endif %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
)
TOOLS_AND_JSON = (
    "{%- set ns = namespace(n=0) -%}\n"
    "{% if tools %}Tools: {{ tools | tojson }}\n{% endif %}"
    "{% if documents %}{% for d in documents %}Doc {{ d.title }}: {{ d.text }}\n{% endfor %}"
    "{% endif %}"
    "{% for m in messages %}{% set ns.n = ns.n + 1 %}"
    "{{ m | tojson(indent=2, sort_keys=True) }}\n"
    "{% if m.tool_calls is defined %}{{ m.tool_calls | tojson(separators=(',', ':')) }}{% endif %}"
    "{% endfor %}{{ ns.n }} messages; extra={{ extra_var | default('none') }}"
    "{% if add_generation_prompt %}\nGO{% endif %}"
)
GENERATION_TAG = (
    "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
    "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}"
)
YEAR = "{{ strftime_now('%Y') }}:{{ messages[0].content }}"


@pytest.mark.parametrize(
    "template", [LOOP_CONTROLS, ALTERNATING, TOOLS_AND_JSON, GENERATION_TAG, YEAR]
)
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_hand_written_templates_match_transformers(ours, theirs, template, add_generation_prompt):
    messages = [
        {"role": "user", "content": 'Say <b>hi</b> & "quote" 你好'},
        {"role": "assistant", "content": "hi", "tool_calls": [{"name": "f", "arguments": {}}]},
        {"role": "user", "content": "  again  "},
        {"role": "assistant", "content": "ok", "reasoning_content": None},
        {"role": "user", "content": "last"},
    ]
    tools = [{"type": "function", "function": {"name": "f", "description": "ünï <x>"}}]
    documents = [{"title": "T", "text": "body"}]
    kwargs = {"extra_var": 7}
    expected = theirs.apply_chat_template(
        messages,
        tools=tools,
        documents=documents,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        tokenize=False,
        **kwargs,
    )
    got = ours.apply_chat_template(
        messages,
        tools=tools,
        documents=documents,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    assert got == expected


def test_raise_exception_in_template_is_a_chat_template_error(ours, theirs):
    messages = [{"role": "assistant", "content": "I speak first"}]
    with pytest.raises(Exception, match="roles must alternate") as their_error:
        theirs.apply_chat_template(messages, chat_template=ALTERNATING, tokenize=False)
    with pytest.raises(ChatTemplateError) as our_error:
        ours.apply_chat_template(messages, chat_template=ALTERNATING)
    assert str(our_error.value) == str(their_error.value)


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("{% for m in messages %}{{ m.content }", "chat template error"),
        ("{{ messages[0].content.__class__.__mro__ }}", "chat template error"),
        ("{{ messages[0].content + 1 }}", "chat template failed"),
        ("{% set ns = namespace() %}{% set ns._x = 1 %}", "underscore"),
    ],
)
def test_broken_or_unsafe_templates_raise_chat_template_error(ours, template, match):
    with pytest.raises(ChatTemplateError, match=match):
        ours.apply_chat_template([{"role": "user", "content": "x"}], chat_template=template)


def test_missing_chat_template_is_a_chat_template_error(ckpt, tmp_path):
    d = tokenizer_copy(ckpt, tmp_path / "notemplate", chat_template=None)
    tok = Tokenizer.from_dir(d)
    with pytest.raises(ChatTemplateError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_empty_conversation_is_rejected(ours):
    with pytest.raises(ChatTemplateError):
        ours.apply_chat_template([])


def test_added_token_dicts_and_named_templates_match_transformers(ckpt, tmp_path):
    templates = [
        {
            "name": "default",
            "template": "{{ bos_token }}D:{{ messages[0].content }}{{ eos_token }}",
        },
        {"name": "tool_use", "template": "{{ bos_token }}T:{{ tools | length }}"},
    ]
    d = tokenizer_copy(
        ckpt,
        tmp_path / "named",
        chat_template=templates,
        bos_token={"content": "<|begin_of_text|>", "special": True, "__type": "AddedToken"},
        eos_token={"content": "<|eot_id|>", "special": True, "__type": "AddedToken"},
    )
    ours = Tokenizer.from_dir(d)
    theirs = transformers.AutoTokenizer.from_pretrained(str(d))
    msgs = [{"role": "user", "content": "q"}]
    tools = [{"type": "function", "function": {"name": "f"}}]
    for kw in ({}, {"tools": tools}):
        assert ours.apply_chat_template(msgs, **kw) == theirs.apply_chat_template(
            msgs, tokenize=False, **kw
        )
    assert ours.apply_chat_template(msgs) == "<|begin_of_text|>D:q<|eot_id|>"


def test_chat_template_jinja_file_takes_precedence(ckpt, tmp_path):
    d = tokenizer_copy(ckpt, tmp_path / "jinjafile")
    (d / "chat_template.jinja").write_text("FILE:{{ messages[0].content }}")
    assert Tokenizer.from_dir(d).apply_chat_template([{"role": "user", "content": "x"}]) == "FILE:x"
