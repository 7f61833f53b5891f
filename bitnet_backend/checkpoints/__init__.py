"""Checkpoint formats: Hugging Face directories of safetensors, and hub resolution."""

from __future__ import annotations

from .hf import Checkpoint, TensorRef, load_checkpoint
from .hub import resolve_source
from .safetensors_file import SafetensorsFile, TensorSpec, write_safetensors

__all__ = [
    "Checkpoint",
    "SafetensorsFile",
    "TensorRef",
    "TensorSpec",
    "load_checkpoint",
    "resolve_source",
    "write_safetensors",
]
