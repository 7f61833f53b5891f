"""The process-wide model cache of bitnet-backend, which ``Bitnet`` and ``BitnetEmbedding`` use.

Sharing goes through bitnet_backend itself, so LlamaIndex and LangChain objects over the same
checkpoint and settings hold one model between them.
"""

from __future__ import annotations

from bitnet_backend import cache_key, load_shared

__all__ = ["cache_key", "load_shared"]
