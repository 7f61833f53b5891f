"""bitnet-backend: fast CPU inference for BitNet b1.58 ternary language models.

>>> import bitnet_backend as bb
>>> with bb.load("microsoft/bitnet-b1.58-2B-4T") as model:
...     print(model.generate("The capital of France is", max_tokens=16).text)
...     for chunk in model.stream_chat([{"role": "user", "content": "Hi!"}]):
...         print(chunk.content, end="", flush=True)
"""

from __future__ import annotations

__version__ = "0.1.0"

# The public names are imported on first use: `import bitnet_backend` then costs nothing, so
# the `bitnet` command (bitnet_backend.cli) starts at once and handles Ctrl-C itself even
# while numpy, the tokenizer and the engine are still being imported.
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (type checkers: True)
_EXPORTS = {
    "ChatCompletion": "completion",
    "ChatCompletionChunk": "completion",
    "Completion": "completion",
    "CompletionChunk": "completion",
    "Timings": "completion",
    "TokenLogprob": "completion",
    "Usage": "completion",
    "BackendNotFoundError": "errors",
    "BitnetError": "errors",
    "CheckpointError": "errors",
    "ContextOverflowError": "errors",
    "InvalidParameterError": "errors",
    "NonFiniteOutputError": "errors",
    "QueueTimeoutError": "errors",
    "UnsupportedModelError": "errors",
    "GenerationConfig": "model",
    "Model": "model",
    "load": "model",
    "list_backends": "plugins",
    "SamplingParams": "sampling",
    "cache_key": "shared",
    "load_shared": "shared",
    "ChatTemplateError": "tokenizer",
    "Tokenizer": "tokenizer",
}

if TYPE_CHECKING:
    from typing import Any

    from .completion import (
        ChatCompletion,
        ChatCompletionChunk,
        Completion,
        CompletionChunk,
        Timings,
        TokenLogprob,
        Usage,
    )
    from .errors import (
        BackendNotFoundError,
        BitnetError,
        CheckpointError,
        ContextOverflowError,
        InvalidParameterError,
        NonFiniteOutputError,
        QueueTimeoutError,
        UnsupportedModelError,
    )
    from .model import GenerationConfig, Model, load
    from .plugins import list_backends
    from .sampling import SamplingParams
    from .shared import cache_key, load_shared
    from .tokenizer import ChatTemplateError, Tokenizer


if not TYPE_CHECKING:  # type checkers see the imports above, and no other names

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted([*globals(), *_EXPORTS])


__all__ = [
    "BackendNotFoundError",
    "BitnetError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatTemplateError",
    "CheckpointError",
    "Completion",
    "CompletionChunk",
    "ContextOverflowError",
    "GenerationConfig",
    "InvalidParameterError",
    "Model",
    "NonFiniteOutputError",
    "QueueTimeoutError",
    "SamplingParams",
    "Timings",
    "TokenLogprob",
    "Tokenizer",
    "UnsupportedModelError",
    "Usage",
    "__version__",
    "cache_key",
    "list_backends",
    "load",
    "load_shared",
]
