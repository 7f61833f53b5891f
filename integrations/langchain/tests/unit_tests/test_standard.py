"""LangChain's standard unit suites for ChatBitnet and BitnetEmbeddings (random tiny model)."""

from __future__ import annotations

import os
from typing import Any

from langchain_bitnet import BitnetEmbeddings, ChatBitnet
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests


class TestChatBitnetUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatBitnet]:
        return ChatBitnet

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": os.environ["LANGCHAIN_BITNET_TINY"]}

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        # No credentials to read: the model is local. The suite skips this test then.
        return {}, {}, {}


class TestBitnetEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[BitnetEmbeddings]:
        return BitnetEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model": os.environ["LANGCHAIN_BITNET_TINY"]}
