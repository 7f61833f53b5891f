"""Modules split by concern keep every name they offered importable from where it was."""

from __future__ import annotations

import importlib

import pytest

NAMES = {
    "bitnet_backend.model": [
        "DEFAULT_MODEL_DIR",
        "LARGE_CHECKPOINT_BYTES",
        "GenerationConfig",
        "Model",
        "checkpoint_bytes",
        "default_threads",
        "load",
    ],
    "bitnet_backend.constraints": [
        "JSON_LAYOUT",
        "ConstraintCompiler",
        "Grammar",
        "GrammarState",
        "Tool",
        "ToolCallStream",
        "ToolMode",
        "ToolProtocol",
        "compiler_for",
        "json_schema_grammar",
        "new_call_id",
        "normalize_schema",
        "normalize_tools",
        "render_tool_history",
        "template_uses_tools",
        "tool_call_schema",
        "tool_grammar",
    ],
    "bitnet_backend.tokenizer": ["ChatTemplateError", "Tokenizer", "find_chat_template"],
    "bitnet_backend.chat_template": [
        "BoundedSandbox",
        "ChatTemplateError",
        "TemplateLimits",
        "bounded_filter",
        "guard_iter",
        "guard_size",
        "render_bounded",
    ],
}


@pytest.mark.parametrize("module", sorted(NAMES))
def test_names_stay_importable_from_their_module(module: str) -> None:
    loaded = importlib.import_module(module)
    missing = [name for name in NAMES[module] if not hasattr(loaded, name)]
    assert missing == []
