"""LlamaIndex RAG: a VectorStoreIndex with BitnetEmbedding, answered by Bitnet. Offline.

pip install ./integrations/llama_index/llms ./integrations/llama_index/embeddings
python examples/llama_index_rag.py
"""

from __future__ import annotations

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.embeddings.bitnet import BitnetEmbedding
from llama_index.llms.bitnet import Bitnet

DOCUMENTS = [
    "Ida Novak is a pilot. She lives in Riga. Her dog is called Biscuit.",
    "Kestrel Works was founded in 1994. The company makes telescopes. It is based in Lyon.",
    "Nina Perez is a teacher. She was born in 1985. She lives in Lisbon.",
]
CAVEAT = "the demo model embedded in bitnet-backend is tiny and can be wrong"
QUESTIONS = [
    "Where does Ida Novak live?",
    "What does Kestrel Works make?",
    "When was Nina Perez born?",
]


def main() -> None:
    Settings.llm = Bitnet(temperature=0.0, max_new_tokens=32)  # the embedded model
    Settings.embed_model = BitnetEmbedding()  # same weights, loaded once
    Settings.tokenizer = Settings.llm.tokenizer  # count tokens with the model's tokenizer
    print(f"model: {Settings.llm.metadata.model_name} ({CAVEAT})")

    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
    engine = index.as_query_engine(similarity_top_k=1)
    for question in QUESTIONS:
        response = engine.query(question)
        print(f"{question} -> {str(response).strip()}")


if __name__ == "__main__":
    main()
