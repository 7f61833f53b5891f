"""Which chat template a render uses: the one place that chooses it.

A model has no template, one, or several by name (tokenizer_config.json's list form:
"default", "tool_use", "rag", ...). ``Model.chat``, ``Model.apply_chat_template``,
``Tokenizer.apply_chat_template``, ``bitnet run`` and everything built on them (the server,
the integrations) choose through ``select_chat_template``, so they agree on every model,
including one without a default template.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from ..errors import CheckpointError
from ..validation import parse_json, read_text
from .limits import ChatTemplateError

# A model's templates as Tokenizer keeps them: none, one, or several by name.
ChatTemplates: TypeAlias = str | dict[str, str] | None


def find_chat_template(path: Path, tokenizer_config: Mapping[str, Any]) -> Any:
    """The chat template of a model directory: chat_template.jinja wins over the config."""
    jinja_file = path / "chat_template.jinja"
    if jinja_file.is_file():
        return read_text(jinja_file, "chat_template.jinja")
    json_file = path / "chat_template.json"
    if json_file.is_file():
        data = parse_json(json_file, read_text(json_file, "chat_template.json"), "JSON")
        if isinstance(data, dict) and "chat_template" in data:
            return data["chat_template"]
    return tokenizer_config.get("chat_template")


def normalise_chat_templates(
    template: str | Mapping[str, str] | Sequence[Mapping[str, str]] | None,
    tokenizer_file: Path,
) -> ChatTemplates:
    """A model's chat template(s) as found in its files, in the form Tokenizer keeps."""
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, Mapping):
        return {str(k): str(v) for k, v in template.items()}
    # tokenizer_config.json may hold a list of {"name": ..., "template": ...}
    if isinstance(template, list) and all(
        isinstance(t, Mapping) and "name" in t and "template" in t for t in template
    ):
        return {str(t["name"]): str(t["template"]) for t in template}
    raise CheckpointError(
        tokenizer_file.with_name("tokenizer_config.json"),
        "chat_template must be a string, an object or a list of {name, template} objects, "
        f"got {type(template).__name__}",
    )


def select_chat_template(
    templates: ChatTemplates, requested: str | None = None, *, tools: bool = False
) -> str:
    """The template text a render uses.

    ``requested`` (the caller's choice) is one of the model's templates by name, or template
    text; without it, the model's "tool_use" template when ``tools`` are shown and it has one,
    else its default (its only template, or the one named "default"). ChatTemplateError when
    the model has none of these.
    """
    if requested is not None and not isinstance(requested, str):
        raise ChatTemplateError(
            f"chat_template must be a template name or template text, got {requested!r:.80}"
        )
    if isinstance(templates, dict):
        if requested is not None:
            return templates.get(requested, requested)
        if tools and "tool_use" in templates:
            return templates["tool_use"]
        if "default" in templates:
            return templates["default"]
        raise ChatTemplateError(
            f"the model has several chat templates and none is the default: {sorted(templates)}"
        )
    if requested is not None:
        return requested
    if templates is None:
        raise ChatTemplateError("the model has no chat template")
    return templates


# Parsing a template costs milliseconds, on every chat call: a model has one or two templates.
@functools.lru_cache(maxsize=16)
def template_uses_tools(source: str | None) -> bool:
    """True when a chat template reads the ``tools`` variable."""
    if not source:
        return False
    import jinja2
    import jinja2.meta

    from .sandbox import BoundedSandbox

    try:
        # The analysis compiles the template, folding constants: a sandbox that bounds them
        # keeps '{{ 2 ** 2 ** 40 }}' from being computed here.
        ast = BoundedSandbox().parse(source)
        return "tools" in jinja2.meta.find_undeclared_variables(ast)
    except (jinja2.TemplateError, RecursionError):
        return False  # rendering reports the template's error
