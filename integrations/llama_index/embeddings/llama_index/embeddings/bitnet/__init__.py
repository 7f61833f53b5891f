"""LlamaIndex embedding integration for BitNet b1.58 models running on bitnet-backend."""

from llama_index.embeddings.bitnet.base import BitnetEmbedding

__all__ = ["BitnetEmbedding"]
