"""LangChain's standard integration suites for ChatBitnet and BitnetEmbeddings, run offline on
a real trained model (see ../conftest.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langchain_bitnet import BitnetEmbeddings, ChatBitnet
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
)

# The embedded model has learned the formats but copies values from its prompt only part of
# the time (model card: exact tool arguments 94%). These tests check exactly that; they are
# expected to fail, strictly, so they report as soon as a retrained model passes them.
NOT_COPYING = pytest.mark.xfail(
    strict=True,
    reason="the embedded model does not reproduce the unicode names it is asked to pass",
)


def trained_model() -> str | None:
    source = os.environ["LANGCHAIN_BITNET_TRAINED"]
    return None if source == "default" else source


class TestChatBitnetIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatBitnet]:
        return ChatBitnet

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Greedy, so each run of the suite sees the same replies.
        return {"model": trained_model(), "temperature": 0}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @NOT_COPYING
    def test_unicode_tool_call_integration(
        self,
        model: BaseChatModel,
        *,
        tool_choice: str | None = None,
        force_tool_call: bool = True,
    ) -> None:
        super().test_unicode_tool_call_integration(
            model, tool_choice=tool_choice, force_tool_call=force_tool_call
        )

    @property
    def model_override_value(self) -> str:
        # A second, different checkpoint: a call with model=... runs on it.
        return os.environ["LANGCHAIN_BITNET_TINY"]


class TestBitnetEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[BitnetEmbeddings]:
        return BitnetEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": trained_model()}
