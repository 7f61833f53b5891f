"""LangChain's standard integration suites for ChatBitnet and BitnetEmbeddings, run offline on
a real trained model (see ../conftest.py)."""

from __future__ import annotations

import os
from typing import Any

from langchain_bitnet import BitnetEmbeddings, ChatBitnet
from langchain_tests.integration_tests import (
    ChatModelIntegrationTests,
    EmbeddingsIntegrationTests,
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
