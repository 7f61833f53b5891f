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
    "Elena Costa is a librarian. She lives in Vienna. Her cat is called Pepper.",
    "Omar Weber is a chemist. He was born in 1979. He lives in Glasgow.",
    "Kestrel Works was founded in 1994. The company makes telescopes. It is based in Lyon.",
]

PROMPT = ChatPromptTemplate.from_messages(
    [("human", "{context}\n\nAnswer the question using the text above.\nQuestion: {question}")]
)


def join(docs: list[Document]) -> str:
    return "\n\n".join(d.page_content for d in docs)


def main() -> None:
    store = InMemoryVectorStore.from_texts(DOCUMENTS, BitnetEmbeddings())  # the embedded model
    retriever = store.as_retriever(search_kwargs={"k": 1})
    chain = (
        {"context": retriever | join, "question": RunnablePassthrough()}
        | PROMPT
        | ChatBitnet(temperature=0, max_tokens=32)  # same weights, loaded once
        | StrOutputParser()
    )
    for question in ["Where does Omar Weber live?", "What does Kestrel Works make?"]:
        print(f"{question} -> {chain.invoke(question).strip()}")


if __name__ == "__main__":
    main()
