"""The chat side of Model: from messages and tools to a validated request, and back to results.

The tool protocol (constraints/tools.py) decides how tools reach the prompt and which grammar
constrains the reply; the chat template, chosen once (chat_template/select.py), renders the
prompt; the Model's own request plumbing checks the options and makes the request that its
scheduler runs. Nothing is queued here: every conversation of a batch is checked first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .chat_results import chat_result
from .chat_template import template_uses_tools
from .completion import ChatCompletion, Completion
from .constraints import ToolCallStream, ToolProtocol
from .errors import ContextOverflowError, InvalidParameterError
from .requests import GenerationRequest
from .validation import check_batch

if TYPE_CHECKING:
    from .model import Model

Messages = Sequence[Mapping[str, Any]]
# A chat request ready to queue, and the parser of its tool calls (None without tools).
StartedChat = tuple[GenerationRequest, ToolCallStream | None]


def chat_prompt(
    model: Model,
    messages: Messages,
    protocol: ToolProtocol,
    template_kwargs: Mapping[str, Any] | None,
) -> list[int]:
    """The prompt token ids of a conversation, the tools' description included."""
    kwargs = dict(template_kwargs or {})
    # Chosen once: the template whose variables decide how tools reach the prompt is the one
    # that renders it.
    source = model._tok().select_chat_template(
        kwargs.pop("chat_template", None), tools=protocol.active
    )
    messages, tools = protocol.prompt(messages, template_uses_tools(source))
    text = model.apply_chat_template(messages, tools=tools, chat_template=source, **kwargs)
    # The template writes the special tokens itself (BOS included), as in transformers.
    return model._encode_prompt(text, add_special=False)


def start_chat(
    model: Model,
    messages: Messages,
    tools: Sequence[Mapping[str, Any]] | None,
    template_kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    tool_choice: str | Mapping[str, Any] = "auto",
    parallel_tool_calls: bool = False,
) -> StartedChat:
    """Check everything of one chat call and make its request (not queued yet)."""
    model._check_open()
    protocol = ToolProtocol.from_request(tools, tool_choice, parallel_tool_calls)
    plan = model._plan(options)
    if protocol.active:
        if plan.grammar is not None:
            raise InvalidParameterError(
                "json_schema cannot be combined with tools unless tool_choice is 'none'"
            )
        # Stop strings could cut a call short; the grammar decides where a reply ends.
        plan = replace(plan, grammar=protocol.grammar(model._constraints()), stops=())
    prompt = chat_prompt(model, messages, protocol, template_kwargs)
    if len(prompt) > model.n_ctx:
        raise ContextOverflowError(len(prompt), model.n_ctx)
    tool_stream = protocol.stream(id_seed=",".join(map(str, prompt))) if protocol.active else None
    return model._request(prompt, plan), tool_stream


def start_chats(
    model: Model,
    conversations: Sequence[Messages],
    tools: Sequence[Mapping[str, Any]] | None,
    template_kwargs: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    tool_choice: str | Mapping[str, Any],
    parallel_tool_calls: bool,
) -> list[StartedChat]:
    """Check every conversation of a chat batch before any of them is queued."""
    return [
        start_chat(model, m, tools, template_kwargs, options, tool_choice, parallel_tool_calls)
        for m in check_batch(conversations, "conversations")
    ]


def chat_results(
    results: Sequence[Completion], started: Sequence[StartedChat]
) -> list[ChatCompletion]:
    """The ChatCompletions of a chat batch, in order (each with its tool calls parsed)."""
    return [
        chat_result(c, tool_stream) for c, (_, tool_stream) in zip(results, started, strict=True)
    ]
