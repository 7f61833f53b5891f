"""Structured output: pydantic models from JSON-schema constrained replies.

The schema goes to the model as ``json_schema=``, so every sampled token keeps the reply a
valid prefix of a matching document; nothing is added to the prompt and no output parser has
to repair the text. A reply cut by max_tokens is the one way to get invalid output, and it is
reported as such.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.bridge.pydantic import BaseModel
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.events.llm import (
    LLMStructuredPredictEndEvent,
    LLMStructuredPredictInProgressEvent,
)
from llama_index.core.program.utils import FlexibleModel, process_streaming_objects

from .schemas import closed

dispatcher = get_dispatcher(__name__)

M = TypeVar("M", bound=BaseModel)


def json_schema(output_cls: type[BaseModel]) -> dict[str, Any]:
    """The schema the reply is constrained to: closed objects unless the class allows extras."""
    schema = output_cls.model_json_schema()
    if output_cls.model_config.get("extra") == "allow":
        return schema
    return closed(schema)


def _check_complete(output_cls: type[BaseModel], response: ChatResponse) -> None:
    raw = response.raw if isinstance(response.raw, dict) else {}
    if raw.get("finish_reason") == "length":
        raise ValueError(
            f"the model did not finish the {output_cls.__name__} JSON within the token limit "
            f"({response.additional_kwargs.get('completion_tokens')} tokens); a larger "
            "max_new_tokens helps only when the JSON was nearly complete (a model that keeps "
            "writing one string never finishes it)"
        )


def finish(output_cls: type[M], response: ChatResponse) -> M:
    """The model instance a complete constrained reply holds."""
    _check_complete(output_cls, response)
    result = output_cls.model_validate_json(response.message.content or "")
    dispatcher.event(LLMStructuredPredictEndEvent(output=result))
    return result


def _is_last(response: ChatResponse) -> bool:
    return isinstance(response.raw, dict) and response.raw.get("finish_reason") is not None


def _step(
    output_cls: type[M], response: ChatResponse, current: list[Any] | None
) -> M | FlexibleModel:
    """The object to hand out for one streamed response: partial, or complete at the end."""
    if _is_last(response):
        return finish(output_cls, response)
    # The core's helper repairs a JSON prefix into a model whose fields may still be missing.
    obj = process_streaming_objects(response, output_cls, cur_objects=current, flexible_mode=True)
    assert not isinstance(obj, list)  # parallel outputs are never requested
    dispatcher.event(LLMStructuredPredictInProgressEvent(output=obj))
    return obj


def stream_objects(
    output_cls: type[M], responses: Iterator[ChatResponse]
) -> Generator[M | FlexibleModel, None, None]:
    """Partial objects as the reply streams; the last one is a complete ``output_cls``."""
    current: list[Any] | None = None
    for response in responses:
        obj = _step(output_cls, response, current)
        current = [obj]
        yield obj


async def astream_objects(
    output_cls: type[M], responses: AsyncIterator[ChatResponse]
) -> AsyncGenerator[M | FlexibleModel, None]:
    """``stream_objects`` over an async stream."""
    current: list[Any] | None = None
    async for response in responses:
        obj = _step(output_cls, response, current)
        current = [obj]
        yield obj
