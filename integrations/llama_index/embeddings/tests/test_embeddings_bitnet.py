"""The checks LlamaIndex runs on every embedding integration, plus batching, async, sharing."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.embeddings.bitnet import BitnetEmbedding
from llama_index.llms.bitnet import Bitnet

TEXTS = [
    "The sun rose over the valley.",
    "Children played in the river.",
    "The market sold bread and fish.",
    "Students read books about history.",
    "A storm came in from the sea.",
]


def test_embedding_class() -> None:
    names_of_base_classes = [b.__name__ for b in BitnetEmbedding.__mro__]
    assert BaseEmbedding.__name__ in names_of_base_classes


def test_vectors_are_the_models_normalised_embeddings(embed_model: BitnetEmbedding) -> None:
    vector = embed_model.get_text_embedding(TEXTS[0])
    assert len(vector) == embed_model.loaded_model.hidden_size
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)
    assert np.allclose(vector, embed_model.loaded_model.embed([TEXTS[0]])[0])


def test_model_name(embed_model: BitnetEmbedding, model_source: str | None) -> None:
    assert embed_model.model_name == (model_source or "bitnet-default")
    assert embed_model.class_name() == "BitnetEmbedding"


def test_batches_give_the_single_text_vectors(embed_model: BitnetEmbedding) -> None:
    singles = [embed_model.get_text_embedding(t) for t in TEXTS]
    batched = embed_model.get_text_embedding_batch(TEXTS)  # batches of 2, 2 and 1
    assert np.allclose(batched, singles, atol=1e-6)


def test_async_forms_give_the_sync_vectors(embed_model: BitnetEmbedding) -> None:
    async def run() -> tuple[list[float], list[list[float]], list[float]]:
        return (
            await embed_model.aget_query_embedding(TEXTS[0]),
            await embed_model.aget_text_embedding_batch(TEXTS),
            await embed_model.aget_text_embedding(TEXTS[1]),
        )

    query, batch, text = asyncio.run(run())
    assert np.allclose(query, embed_model.get_query_embedding(TEXTS[0]), atol=1e-6)
    assert np.allclose(batch, embed_model.get_text_embedding_batch(TEXTS), atol=1e-6)
    assert np.allclose(text, embed_model.get_text_embedding(TEXTS[1]), atol=1e-6)


def test_instructions_are_put_before_the_text(model_source: str | None) -> None:
    plain = BitnetEmbedding(model=model_source)
    instructed = BitnetEmbedding(
        model=model_source, query_instruction="Query:", text_instruction="Passage:"
    )
    assert np.allclose(
        instructed.get_query_embedding(TEXTS[0]), plain.get_text_embedding(f"Query: {TEXTS[0]}")
    )
    assert np.allclose(
        instructed.get_text_embedding(TEXTS[0]), plain.get_text_embedding(f"Passage: {TEXTS[0]}")
    )


def test_llm_and_embedding_share_one_model(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, n_ctx=1024)
    embedding = BitnetEmbedding(model=model_source, n_ctx=1024)
    assert embedding.loaded_model is llm.loaded_model
    assert BitnetEmbedding(model=model_source, n_ctx=512).loaded_model is not llm.loaded_model


def test_concurrent_embedding_gives_the_sequential_vectors(embed_model: BitnetEmbedding) -> None:
    sequential = [embed_model.get_text_embedding(t) for t in TEXTS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(embed_model.get_text_embedding, TEXTS))

    async def run() -> list[list[float]]:
        return list(await asyncio.gather(*(embed_model.aget_text_embedding(t) for t in TEXTS)))

    assert np.allclose(threaded, sequential, atol=1e-6)
    assert np.allclose(asyncio.run(run()), sequential, atol=1e-6)


def test_tokenizer_is_the_models_and_sizes_chunks(
    embed_model: BitnetEmbedding, model_source: str | None
) -> None:
    from llama_index.core.node_parser import SentenceSplitter

    text = " ".join(TEXTS * 8)
    model = embed_model.loaded_model
    assert embed_model.tokenizer(text) == model.tokenize(text, add_special=False)
    assert embed_model.tokenizer(text) == Bitnet(model=model_source).tokenizer(text)
    splitter = SentenceSplitter(chunk_size=24, chunk_overlap=0, tokenizer=embed_model.tokenizer)
    chunks = splitter.split_text(text)
    assert len(chunks) > 1
    assert all(len(model.tokenize(c, add_special=False)) <= 24 for c in chunks)
