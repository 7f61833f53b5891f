"""bitnet-backend: fast CPU inference for BitNet b1.58 ternary language models.

>>> import bitnet_backend as bb
>>> with bb.load("microsoft/bitnet-b1.58-2B-4T") as model:
...     print(model.generate("The capital of France is", max_tokens=16).text)
...     for chunk in model.stream_chat([{"role": "user", "content": "Hi!"}]):
...         print(chunk.content, end="", flush=True)
"""

from __future__ import annotations

from .completion import ChatCompletion, ChatCompletionChunk, Completion, CompletionChunk, Usage
from .errors import (
    BackendNotFoundError,
    BitnetError,
    CheckpointError,
    ContextOverflowError,
    InvalidParameterError,
    NonFiniteOutputError,
    UnsupportedModelError,
)
from .model import GenerationConfig, Model, load
from .plugins import list_backends
from .sampling import SamplingParams
from .shared import cache_key, load_shared
from .tokenizer import ChatTemplateError, Tokenizer

__version__ = "0.1.0"

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
    "SamplingParams",
    "Tokenizer",
    "UnsupportedModelError",
    "Usage",
    "__version__",
    "cache_key",
    "list_backends",
    "load",
    "load_shared",
]
