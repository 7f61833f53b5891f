"""Output parsers for ``with_structured_output`` that refuse a reply cut by the token limit.

Decoding under a schema always gives a valid prefix of a matching document, so the one way to
get an invalid one is a reply that ran out of tokens. LangChain's JSON parsers repair such a
prefix (they close the open string and the open objects), which would turn a cut reply into a
plausible-looking but wrong object; these parsers check the finish reason first and raise
``OutputParserException`` instead, which ``include_raw=True`` reports as ``parsing_error``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, Generation


def check_finished(result: list[Generation]) -> None:
    """Raise ``OutputParserException`` if the reply ended at the token limit."""
    generation = result[0] if result else None
    if not isinstance(generation, ChatGeneration):
        return
    message = generation.message
    if message.response_metadata.get("finish_reason") != "length":
        return
    usage = getattr(message, "usage_metadata", None) or {}
    tokens = usage.get("output_tokens")
    spent = f" after {tokens} tokens" if tokens is not None else ""
    raise OutputParserException(
        f"the model did not finish the JSON within max_tokens{spent} (finish_reason "
        "'length'): raise max_tokens if the output is long, or, if the model never closes a "
        "string, bound the string fields (maxLength, pydantic max_length) or make the prompt "
        "clearer",
        llm_output=str(message.content),
    )


class _RefusesCutReplies:
    """Mixin: ``parse_result`` checks the finish reason before the parser proper runs.

    Streaming parsers call ``parse_result`` on the message gathered so far, whose finish
    reason arrives with the last chunk, so a streamed cut reply fails as well.
    """

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> Any:
        check_finished(result)
        return super().parse_result(result, partial=partial)  # type: ignore[misc]


class FinishedJsonOutputParser(_RefusesCutReplies, JsonOutputParser):
    """``JsonOutputParser`` that refuses a reply cut by the token limit."""


class FinishedPydanticOutputParser(_RefusesCutReplies, PydanticOutputParser):  # type: ignore[type-arg]
    """``PydanticOutputParser`` that refuses a reply cut by the token limit."""


class FinishedJsonOutputKeyToolsParser(_RefusesCutReplies, JsonOutputKeyToolsParser):
    """``JsonOutputKeyToolsParser`` that refuses a call cut by the token limit."""


class FinishedPydanticToolsParser(_RefusesCutReplies, PydanticToolsParser):
    """``PydanticToolsParser`` that refuses a call cut by the token limit."""
