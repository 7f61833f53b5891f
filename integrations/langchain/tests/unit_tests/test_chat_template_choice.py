"""ChatBitnet chooses the chat template as ``Model.chat`` does, also for a model whose only
template is a "tool_use" one (no default)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Literal

import pytest
from langchain_bitnet import ChatBitnet
from langchain_core.tools import tool

import bitnet_backend as bb

TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


@tool
def weather(city: Literal["Paris", "Rome"]) -> str:
    """Current weather in a city."""
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def only_tool_use(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("only-tool-use") / "model"
    shutil.copytree(os.environ["LANGCHAIN_BITNET_TINY"], out)
    cfg_file = Path(out) / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["chat_template"] = [{"name": "tool_use", "template": TOOL_TEMPLATE}]
    cfg_file.write_text(json.dumps(cfg))
    return str(out)


def test_a_model_without_a_default_template_fails_as_model_chat_does(only_tool_use: str) -> None:
    llm = ChatBitnet(model=only_tool_use, temperature=0, max_tokens=4)
    with pytest.raises(bb.ChatTemplateError) as direct:
        llm.loaded_model.chat([{"role": "user", "content": "Weather?"}], max_tokens=4)
    with pytest.raises(bb.ChatTemplateError) as through_langchain:
        llm.invoke("Weather?")
    assert str(through_langchain.value) == str(direct.value)


def test_bound_tools_reach_the_tool_use_template(only_tool_use: str) -> None:
    llm = ChatBitnet(model=only_tool_use, temperature=0, max_tokens=48)
    result = llm.bind_tools([weather], tool_choice="weather").invoke("Weather?")
    (call,) = result.tool_calls
    assert call["name"] == "weather" and call["args"]["city"] in ("Paris", "Rome")
