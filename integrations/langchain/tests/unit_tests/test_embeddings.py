"""BitnetEmbeddings on a random tiny checkpoint: shapes, batching, normalisation, async."""

from __future__ import annotations

import asyncio
import math
import os

import pytest
from langchain_bitnet import BitnetEmbeddings
from pydantic import ValidationError

import bitnet_backend as bb


@pytest.fixture
def embeddings() -> BitnetEmbeddings:
    return BitnetEmbeddings(model=os.environ["LANGCHAIN_BITNET_TINY"], batch_size=2)


def test_vectors_are_the_models_normalised_embeddings(embeddings: BitnetEmbeddings) -> None:
    texts = ["red apples", "green pears", "blue sky", "red apples"]
    vectors = embeddings.embed_documents(texts)  # two batches of two
    assert len(vectors) == 4
    assert all(len(v) == embeddings.loaded_model.hidden_size for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)
    assert vectors[0] == vectors[3]
    assert vectors[0] != vectors[1]
    direct = embeddings.loaded_model.embed(texts[1])[0].tolist()
    assert vectors[1] == pytest.approx(direct, abs=1e-6)
    assert embeddings.embed_query("blue sky") == pytest.approx(vectors[2], abs=1e-6)


def test_async_matches_sync(embeddings: BitnetEmbeddings) -> None:
    texts = ["one", "two", "three"]
    got = asyncio.run(embeddings.aembed_documents(texts))
    for a, b in zip(got, embeddings.embed_documents(texts), strict=True):
        assert a == pytest.approx(b, abs=1e-6)
    assert asyncio.run(embeddings.aembed_query("two")) == pytest.approx(
        embeddings.embed_query("two"), abs=1e-6
    )


def test_bad_settings_and_texts_raise(embeddings: BitnetEmbeddings) -> None:
    with pytest.raises(ValidationError):
        BitnetEmbeddings(model=embeddings.model, batch_size=0)
    with pytest.raises(ValidationError):
        BitnetEmbeddings(model=embeddings.model, modle="typo")  # type: ignore[call-arg]
    with pytest.raises(bb.ContextOverflowError):
        embeddings.embed_documents(["fine", "word " * (embeddings.loaded_model.n_ctx + 10)])
    assert embeddings.embed_documents([]) == []
