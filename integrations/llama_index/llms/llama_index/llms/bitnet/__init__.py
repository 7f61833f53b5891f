"""LlamaIndex LLM integration for BitNet b1.58 models running on bitnet-backend."""

from llama_index.llms.bitnet.base import Bitnet

__all__ = ["Bitnet"]
