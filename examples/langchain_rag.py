"""LangChain RAG: an LCEL chain (retriever | prompt | ChatBitnet | parser) over an in-memory
vector store of BitnetEmbeddings. Offline.

pip install ./integrations/langchain
python examples/langchain_rag.py
"""

from __future__ import annotations

from langchain_bitnet import BitnetEmbeddings, ChatBitnet
from langchain_core.documents import Document
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore

DOCUMENTS = [
    "Ida Novak is a pilot. She lives in Riga. Her dog is called Biscuit.",
    "Kestrel Works was founded in 1994. The company makes telescopes. It is based in Lyon.",
    "Nina Perez is a teacher. She was born in 1985. She lives in Lisbon.",
]
QUESTIONS = [
    "Where does Ida Novak live?",
    "What does Kestrel Works make?",
    "When was Nina Perez born?",
]

CAVEAT = "the demo model embedded in bitnet-backend is tiny and can be wrong"
PROMPT = ChatPromptTemplate.from_messages(
    [("human", "{context}\n\nAnswer the question using the text above.\nQuestion: {question}")]
)


def join(docs: list[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


def main() -> None:
    store = InMemoryVectorStore.from_texts(DOCUMENTS, BitnetEmbeddings())  # the embedded model
    retriever = store.as_retriever(search_kwargs={"k": 1})
    llm = ChatBitnet(temperature=0, max_tokens=32)  # same weights, loaded once
    print(f"model: {llm.model_name} ({CAVEAT})")
    chain = (
        {"context": retriever | join, "question": RunnablePassthrough()}
        | PROMPT
        | llm
        | StrOutputParser()
    )
    for question in QUESTIONS:
        print(f"{question} -> {chain.invoke(question).strip()}")


if __name__ == "__main__":
    main()
