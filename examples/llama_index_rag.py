"""LlamaIndex RAG: a VectorStoreIndex with BitnetEmbedding, answered by Bitnet. Offline.

pip install ./integrations/llama_index/llms ./integrations/llama_index/embeddings
python examples/llama_index_rag.py
"""

from __future__ import annotations

from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.embeddings.bitnet import BitnetEmbedding
from llama_index.llms.bitnet import Bitnet

DOCUMENTS = [
    "Elena Costa is a librarian. She lives in Vienna. Her cat is called Pepper.",
    "Omar Weber is a chemist. He was born in 1979. He lives in Glasgow.",
    "Kestrel Works was founded in 1994. The company makes telescopes. It is based in Lyon.",
]


def main() -> None:
    Settings.llm = Bitnet(temperature=0.0, max_new_tokens=32)  # the embedded model
    Settings.embed_model = BitnetEmbedding()  # same weights, loaded once
    Settings.tokenizer = Settings.llm.tokenizer  # count tokens with the model's tokenizer

    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS])
    engine = index.as_query_engine(similarity_top_k=2)
    for question in ["Where does Omar Weber live?", "What does Kestrel Works make?"]:
        response = engine.query(question)
        print(f"{question} -> {str(response).strip()}")


if __name__ == "__main__":
    main()
