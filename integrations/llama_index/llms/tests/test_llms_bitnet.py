"""The checks LlamaIndex runs on every LLM integration, plus metadata and model sharing."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.llms.bitnet import Bitnet


def test_llm_class() -> None:
    names_of_base_classes = [b.__name__ for b in Bitnet.__mro__]
    assert BaseLLM.__name__ in names_of_base_classes
    assert issubclass(Bitnet, FunctionCallingLLM)


def test_metadata_describes_the_loaded_model(llm: Bitnet, model_source: str | None) -> None:
    meta = llm.metadata
    assert meta.context_window == llm.loaded_model.n_ctx
    assert meta.num_output == llm.max_new_tokens
    assert meta.is_chat_model
    assert meta.is_function_calling_model
    assert meta.model_name == (model_source or "bitnet-default")


def test_n_ctx_sets_the_context_window(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, n_ctx=512)
    assert llm.metadata.context_window == 512
    assert llm.loaded_model.n_ctx == 512


def test_model_is_loaded_once_per_load_settings(model_source: str | None) -> None:
    first = Bitnet(model=model_source, temperature=0.5)
    second = Bitnet(model=model_source, max_new_tokens=7)  # generation settings do not matter
    other = Bitnet(model=model_source, n_ctx=256)
    assert first.loaded_model is second.loaded_model
    assert other.loaded_model is not first.loaded_model


def test_serializes_settings_not_the_model(llm: Bitnet, model_source: str | None) -> None:
    data = llm.to_dict()
    assert data["class_name"] == "Bitnet_llm"
    assert data["model"] == model_source
    assert data["temperature"] == 0.0
    assert Bitnet.from_dict(data).loaded_model is llm.loaded_model


def test_tokenizer_is_the_models_own_without_special_tokens(llm: Bitnet) -> None:
    text = "The library opened early."
    assert llm.tokenizer(text) == llm.loaded_model.tokenize(text, add_special=False)


def test_every_sampling_field_reaches_the_model(model_source: str | None) -> None:
    fields: dict[str, Any] = {"temperature": 0.9, "top_k": 5, "top_p": 0.9, "min_p": 0.1}
    fields |= {"repeat_penalty": 1.3, "seed": 7}
    llm = Bitnet(model=model_source, max_new_tokens=12, **fields)
    assert llm._options({}) == {"max_tokens": 12, **fields}
    want = llm.loaded_model.generate("Hello", max_tokens=12, **fields)
    assert llm.complete("Hello", formatted=True).text == want.text
