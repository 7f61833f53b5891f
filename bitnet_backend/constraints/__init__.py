"""Constrained decoding: JSON schemas (grammar.py) and the tool-call protocol (tools.py), with
the reader of streamed tool calls (tool_stream.py) over an incremental JSON scanner
(json_scanner.py)."""

from ..chat_template import template_uses_tools
from .grammar import (
    JSON_LAYOUT,
    ConstraintCompiler,
    Grammar,
    GrammarState,
    compiler_for,
    json_schema_grammar,
    normalize_schema,
)
from .tool_stream import ToolCallStream, new_call_id
from .tools import (
    Tool,
    ToolMode,
    ToolProtocol,
    normalize_tools,
    render_tool_history,
    tool_call_schema,
    tool_grammar,
)

__all__ = [
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
]
