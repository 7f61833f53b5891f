"""``BitnetEmbeddings``: LangChain embeddings from a BitNet b1.58 model's hidden states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

import bitnet_backend as bb


class BitnetEmbeddings(BaseModel, Embeddings):
    """Text embeddings: the mean of the model's final hidden states, L2-normalised.

    Vectors have the model's hidden size; cosine similarity is their dot product. The model
    is shared with ``ChatBitnet`` / ``BitnetLLM`` objects of the same load settings. Texts are
    embedded ``batch_size`` at a time in one native call each; a text longer than the context
    window raises ``bitnet_backend.ContextOverflowError`` (split documents first).

    Example:
        ```python
        from langchain_bitnet import BitnetEmbeddings

        embeddings = BitnetEmbeddings()  # the embedded default model
        vectors = embeddings.embed_documents(["Riga is on the Baltic.", "Oslo has fjords."])
        query = embeddings.embed_query("Which city has fjords?")
        ```
    """

    model: str | None = Field(
        default=None,
        description="Checkpoint directory, Hugging Face hub id, or None for the embedded "
        "default model.",
    )
    backend: str = Field(default="auto", description="bitnet-backend backend name, or 'auto'.")
    n_threads: int | None = Field(default=None, gt=0)
    n_ctx: int | None = Field(default=None, gt=0)
    batch_size: int = Field(default=32, gt=0, description="Texts per native call.")
    model_kwargs: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    _model: bb.Model = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._model = bb.load_shared(
            self.model, self.backend, self.n_threads, self.n_ctx, self.model_kwargs
        )

    @property
    def loaded_model(self) -> bb.Model:
        """The shared ``bitnet_backend.Model`` the embeddings come from."""
        return self._model

    def _batches(self, texts: Sequence[str]) -> list[list[str]]:
        return [list(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text."""
        out: list[list[float]] = []
        for batch in self._batches(texts):
            out.extend(self._model.embed(batch).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query text."""
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """``embed_documents`` with the native work in a worker thread."""
        out: list[list[float]] = []
        for batch in self._batches(texts):
            out.extend((await self._model.aembed(batch)).tolist())
        return out

    async def aembed_query(self, text: str) -> list[float]:
        """``embed_query`` with the native work in a worker thread."""
        return (await self.aembed_documents([text]))[0]
