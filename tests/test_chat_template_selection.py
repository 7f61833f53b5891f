"""One template selector: Model.chat, apply_chat_template, tokenize_chat, ``bitnet run`` and the
server choose the same chat template, also for models without a default one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_helpers import bitnet
from live_server import LiveServer

import bitnet_backend as bb
from bitnet_backend.constraints import render_tool_history
from bitnet_backend.testing import CHAT_TEMPLATE

# Reads ``tools``: a model's "tool_use" template in the transformers sense.
TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
MESSAGES = [{"role": "user", "content": "Weather in Paris?"}]
NO_DEFAULT = "none is the default"
NO_TEMPLATE = "the model has no chat template"
WITHOUT_DEFAULT = [("only_tool_use", NO_DEFAULT), ("no_template", NO_TEMPLATE)]
# A turn that called a tool and got its result back.
HISTORY = [
    *MESSAGES,
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


def _with_templates(make_checkpoint: Callable[..., Path], tmp: Path, templates: Any) -> Path:
    """A copy of the tiny checkpoint whose tokenizer_config.json holds ``templates``."""
    out = tmp / "model"
    shutil.copytree(make_checkpoint(), out)
    cfg_file = out / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    if templates is None:
        cfg.pop("chat_template", None)
    else:
        cfg["chat_template"] = templates
    cfg_file.write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def only_tool_use(
    make_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, bb.Model]]:
    """A model whose only template is named "tool_use": no default."""
    path = _with_templates(
        make_checkpoint,
        tmp_path_factory.mktemp("only-tool-use"),
        [{"name": "tool_use", "template": TOOL_TEMPLATE}],
    )
    with bb.load(path, n_threads=1) as model:
        yield path, model


@pytest.fixture(scope="module")
def no_template(
    make_checkpoint: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, bb.Model]]:
    path = _with_templates(make_checkpoint, tmp_path_factory.mktemp("no-template"), None)
    with bb.load(path, n_threads=1) as model:
        yield path, model


def _error(call: Callable[[], Any]) -> str:
    with pytest.raises(bb.ChatTemplateError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(
    ("fixture", "reason"), [("only_tool_use", NO_DEFAULT), ("no_template", NO_TEMPLATE)]
)
def test_every_chat_path_refuses_a_model_without_a_default_template_alike(
    fixture: str, reason: str, request: pytest.FixtureRequest
) -> None:
    _, model = request.getfixturevalue(fixture)
    messages = [dict(m) for m in MESSAGES]
    errors = {
        "apply_chat_template": _error(lambda: model.apply_chat_template(messages)),
        "tokenizer": _error(lambda: model.tokenizer.apply_chat_template(messages)),
        "tokenize_chat": _error(lambda: model.tokenize_chat(messages)),
        "chat": _error(lambda: model.chat(messages, max_tokens=2)),
        "stream_chat": _error(lambda: model.stream_chat(messages, max_tokens=2)),
        # Tools that are not shown do not choose the "tool_use" template.
        "tool_choice none": _error(
            lambda: model.chat(messages, tools=[WEATHER], tool_choice="none", max_tokens=2)
        ),
    }
    assert len(set(errors.values())) == 1, errors
    assert reason in errors["chat"]


def test_shown_tools_choose_the_tool_use_template_for_chat_and_render_alike(
    only_tool_use: tuple[Path, bb.Model],
) -> None:
    _, model = only_tool_use
    ids = model.tokenize_chat(MESSAGES, [WEATHER], tool_choice="required")
    text = model.apply_chat_template(MESSAGES, tools=[WEATHER])
    assert text.startswith(model.tokenizer.bos_token + "tools: ")
    assert ids == model.tokenize(text, add_special=False)
    reply = model.chat(MESSAGES, [WEATHER], tool_choice="required", max_tokens=64, temperature=0)
    assert reply.usage["prompt_tokens"] == len(ids)


def test_a_chosen_template_wins_over_the_models_choice(
    only_tool_use: tuple[Path, bb.Model],
) -> None:
    _, model = only_tool_use
    chosen = {"chat_template": CHAT_TEMPLATE}
    ids = model.tokenize_chat(MESSAGES, template_kwargs=chosen)
    assert ids == model.tokenize(model.apply_chat_template(MESSAGES, **chosen), add_special=False)


def test_tool_choice_none_renders_the_default_template_the_tools_are_not_shown_to(
    make_checkpoint: Callable[..., Path], tmp_path: Path
) -> None:
    # With a "tool_use" template beside the default, unshown tools must not send the
    # conversation through one template while another renders it.
    path = _with_templates(
        make_checkpoint, tmp_path, {"default": CHAT_TEMPLATE, "tool_use": TOOL_TEMPLATE}
    )
    with bb.load(path, n_threads=1) as model:
        ids = model.tokenize_chat(HISTORY, [WEATHER], tool_choice="none")
        assert ids == model.tokenize_chat(HISTORY)  # as if no tools were given
        history = render_tool_history(HISTORY)  # the default template does not read tools
        assert ids == model.tokenize(model.apply_chat_template(history), add_special=False)
        shown = model.tokenize_chat(MESSAGES, [WEATHER], tool_choice="auto")
        text = model.tokenizer.decode(shown, skip_special=False)
        assert text.startswith(model.tokenizer.bos_token + "tools: ")


@pytest.mark.parametrize(
    ("fixture", "reason"), [("only_tool_use", NO_DEFAULT), ("no_template", NO_TEMPLATE)]
)
def test_bitnet_run_completes_as_plain_text_where_chat_finds_no_template(
    fixture: str, reason: str, request: pytest.FixtureRequest
) -> None:
    path, model = request.getfixturevalue(fixture)
    greedy = ("--max-tokens", "6", "--temperature", "0", "--threads", "1")
    r = bitnet("run", "-m", str(path), "Once upon a time", *greedy)
    assert r.returncode == 0, r.stderr
    expected = model.generate("Once upon a time", max_tokens=6, temperature=0).text
    assert r.stdout == expected + "\n"
    forced = bitnet("run", "-m", str(path), "--chat", "Once upon a time", *greedy)
    assert forced.returncode == 2 and reason in forced.stderr, forced.stderr


def test_the_server_refuses_a_chat_without_a_default_template_with_the_same_error(
    only_tool_use: tuple[Path, bb.Model],
) -> None:
    from bitnet_backend.server import ServerSettings, create_app

    _, model = only_tool_use
    expected = _error(lambda: model.chat(MESSAGES, max_tokens=2))
    app = create_app(ServerSettings(models={"m": None}), models={"m": model})
    body = {"model": "m", "messages": MESSAGES, "max_tokens": 2}
    with LiveServer(app) as srv:
        r = httpx.post(f"{srv.url}/v1/chat/completions", json=body, timeout=60.0)
    assert r.status_code == 400, r.text
    assert expected in r.json()["error"]["message"]
