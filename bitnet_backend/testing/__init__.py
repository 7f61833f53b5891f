"""Test-fixture writers: random BitNet b1.58 checkpoints in the exact on-disk format of
microsoft/bitnet-b1.58-2B-4T, and huggingface_hub cache entries.

``write_checkpoint`` writes config.json, generation_config.json, a small byte-level BPE
tokenizer (llama-3 style special tokens, a chat template shaped like 2B-4T's) and safetensors
(one file or shards + index) with random weights whose logits are far from uniform. The same
seed always gives the same files. ``write_hub_cache`` lays a checkpoint out as a
huggingface_hub cache entry, so hub ids can be loaded offline.

For tests, benchmarks and examples only: the runtime package never imports it
(tests/test_import_graph.py checks that).

    python -m bitnet_backend.testing --shape 2b-4t OUT_DIR
"""

from __future__ import annotations

from .checkpoints import (
    SHAPE_FAMILIES,
    SHAPES,
    build_config,
    tokenizer_config,
    write_checkpoint,
    write_gguf,
    write_json,
)
from .cli import build_parser, main
from .hub_cache import write_hub_cache
from .tokenizer import (
    _SPLIT_PATTERN,
    BOS,
    CHAT_TEMPLATE,
    EOS,
    EOT,
    corpus,
    special_ids,
    tokenizer_json,
    tokenizer_size,
    train_tokenizer_json,
)

__all__ = [
    "BOS",
    "CHAT_TEMPLATE",
    "EOS",
    "EOT",
    "SHAPES",
    "SHAPE_FAMILIES",
    "_SPLIT_PATTERN",
    "build_config",
    "build_parser",
    "corpus",
    "main",
    "special_ids",
    "tokenizer_config",
    "tokenizer_json",
    "tokenizer_size",
    "train_tokenizer_json",
    "write_checkpoint",
    "write_gguf",
    "write_hub_cache",
    "write_json",
]
