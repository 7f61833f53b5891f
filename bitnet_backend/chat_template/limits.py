"""What a chat-template render may spend, and the error every template failure raises.

Kept apart from the sandbox so that naming them does not import jinja2: a process that never
renders a chat template (token ids in, token ids out) does not hold it in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidParameterError


class ChatTemplateError(InvalidParameterError):
    """A chat template is missing, malformed, or refused the messages it was given."""


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds on one chat-template render: characters of any value built, and seconds."""

    max_chars: int = 4_000_000
    max_seconds: float = 5.0

    def __post_init__(self) -> None:
        if isinstance(self.max_chars, bool) or not isinstance(self.max_chars, int):
            raise InvalidParameterError(f"max_chars must be an integer, got {self.max_chars!r}")
        if self.max_chars < 1:
            raise InvalidParameterError(f"max_chars must be >= 1, got {self.max_chars}")
        if not isinstance(self.max_seconds, (int, float)) or not self.max_seconds > 0:
            raise InvalidParameterError(f"max_seconds must be > 0, got {self.max_seconds!r}")
