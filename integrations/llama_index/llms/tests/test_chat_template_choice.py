"""Bitnet chooses the chat template as ``Model.chat`` does, also for a model whose only
template is a "tool_use" one (no default)."""

# No `from __future__ import annotations`: FunctionTool reads the real annotations.

import json
from pathlib import Path
from typing import Literal

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.tools import FunctionTool
from llama_index.llms.bitnet import Bitnet

import bitnet_backend as bb
from bitnet_backend.testing import write_checkpoint

TOOL_TEMPLATE = (
    "{{ bos_token }}{% if tools %}tools: {{ tools | tojson }}\n{% endif %}"
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def get_capital(country: Literal["France", "Japan"]) -> str:
    """The capital city of a country."""
    return {"France": "Paris", "Japan": "Tokyo"}[country]


@pytest.fixture(scope="module")
def only_tool_use(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = write_checkpoint(tmp_path_factory.mktemp("only-tool-use") / "model", shape="tiny")
    cfg_file = Path(out) / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg["chat_template"] = [{"name": "tool_use", "template": TOOL_TEMPLATE}]
    cfg_file.write_text(json.dumps(cfg))
    return str(out)


def test_a_model_without_a_default_template_fails_as_model_chat_does(only_tool_use: str) -> None:
    llm = Bitnet(model=only_tool_use, max_new_tokens=4, temperature=0.0)
    with pytest.raises(bb.ChatTemplateError) as direct:
        llm.loaded_model.chat([{"role": "user", "content": "Capital?"}], max_tokens=4)
    with pytest.raises(bb.ChatTemplateError) as through_llama_index:
        llm.chat([ChatMessage(role=MessageRole.USER, content="Capital?")])
    assert str(through_llama_index.value) == str(direct.value)


def test_tools_reach_the_tool_use_template(only_tool_use: str) -> None:
    llm = Bitnet(model=only_tool_use, max_new_tokens=96, temperature=0.0)
    tool = FunctionTool.from_defaults(fn=get_capital)
    response = llm.chat_with_tools([tool], "Capital of France?", tool_required=True)
    (call,) = llm.get_tool_calls_from_response(response)
    assert call.tool_name == "get_capital" and call.tool_kwargs["country"] in ("France", "Japan")
