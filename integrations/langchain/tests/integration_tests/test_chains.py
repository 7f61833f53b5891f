"""ChatBitnet inside LangChain pipelines, on a real trained model: an LCEL chain, a RAG chain
over BitnetEmbeddings, and a tool-calling loop that executes the returned calls."""

from __future__ import annotations

import os

import pytest
from langchain_bitnet import BitnetEmbeddings, ChatBitnet
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnablePassthrough
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore


def trained_model() -> str | None:
    source = os.environ["LANGCHAIN_BITNET_TRAINED"]
    return None if source == "default" else source


READING = ChatPromptTemplate.from_messages(
    [("human", "{context}\n\nAnswer the question using the text above.\nQuestion: {question}")]
)


def test_lcel_chain_answers_from_the_context() -> None:
    llm = ChatBitnet(model=trained_model(), temperature=0, max_tokens=24)
    chain = READING | llm | StrOutputParser()
    context = (
        "Ingrid Holm is a baker. She lives in Tallinn. She was born in 1987. "
        "Her dog is called Juniper."
    )
    assert "Tallinn" in chain.invoke(
        {"context": context, "question": "Where does Ingrid Holm live?"}
    )
    answers = chain.batch(
        [
            {"context": context, "question": "What is the name of Ingrid Holm's dog?"},
            {"context": context, "question": "When was Ingrid Holm born?"},
        ]
    )
    assert "Juniper" in answers[0]
    assert "1987" in answers[1]


def test_lcel_chain_and_tool_loop_run() -> None:
    """The pipelines themselves, whatever the values: text out of the chain, a call executed."""
    llm = ChatBitnet(model=trained_model(), temperature=0, max_tokens=24)
    chain = READING | llm | StrOutputParser()
    out = chain.batch([{"context": "Ida Novak lives in Riga.", "question": "Where?"}] * 2)
    assert len(out) == 2 and all(isinstance(a, str) and a.strip() for a in out)

    @tool
    def get_weather(city: str) -> dict[str, object]:
        """Get the current weather in a city."""
        return {"temperature": 9, "condition": "rainy"}

    with_tools = ChatBitnet(model=trained_model(), temperature=0, max_tokens=64).bind_tools(
        [get_weather]
    )
    messages: list[BaseMessage] = [HumanMessage("What's the weather like in Bergen?")]
    reply = with_tools.invoke(messages)
    assert [c["name"] for c in reply.tool_calls] == ["get_weather"]
    messages += [reply, get_weather.invoke(reply.tool_calls[0])]
    final = with_tools.invoke(messages)
    assert final.tool_calls == [] and str(final.content).strip()


def test_rag_chain_retrieves_and_answers() -> None:
    documents = [
        "Elena Costa is a librarian. She lives in Vienna. Her cat is called Pepper.",
        "Omar Weber is a chemist. He was born in 1979. He lives in Glasgow.",
        "Kestrel Works was founded in 1994. The company makes telescopes. It is based in Lyon.",
    ]
    store = InMemoryVectorStore.from_texts(documents, BitnetEmbeddings(model=trained_model()))
    retriever = store.as_retriever(search_kwargs={"k": 1})
    chain = (
        {
            "context": retriever | (lambda docs: "\n\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | READING
        | ChatBitnet(model=trained_model(), temperature=0, max_tokens=24)
        | StrOutputParser()
    )
    assert "Glasgow" in chain.invoke("Where does Omar Weber live?")


@pytest.mark.xfail(
    strict=True,
    reason="the embedded model does not yet copy values from its prompt reliably (see its "
    "model card)",
)
def test_tool_loop_executes_calls_and_uses_the_result() -> None:
    seen: list[dict[str, object]] = []

    @tool
    def get_weather(city: str) -> dict[str, object]:
        """Get the current weather in a city."""
        seen.append({"city": city})
        return {"temperature": 9, "condition": "rainy"}

    llm = ChatBitnet(model=trained_model(), temperature=0, max_tokens=64).bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What's the weather like in Bergen?")]
    for _ in range(3):
        reply = llm.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            result = get_weather.invoke(call)
            assert isinstance(result, ToolMessage)
            messages.append(result)
    assert seen == [{"city": "Bergen"}]
    answer = str(messages[-1].content)
    assert "9" in answer and "rain" in answer


@pytest.mark.xfail(
    strict=True,
    reason="asked for a joke, the embedded model writes its setup until the token budget ends",
)
def test_structured_output_dict_schemas() -> None:
    """Dict schemas through both structured-output methods give the schema's keys."""
    schema = {
        "title": "Joke",
        "type": "object",
        "properties": {
            "setup": {"type": "string", "description": "question to set up a joke"},
            "punchline": {"type": "string", "description": "answer to resolve the joke"},
        },
        "required": ["setup", "punchline"],
    }
    llm = ChatBitnet(model=trained_model(), temperature=0)
    for method in ("json_schema", "function_calling"):
        chain = llm.with_structured_output(schema, method=method)  # type: ignore[arg-type]
        result = chain.invoke("Tell me a joke about cats.")
        assert isinstance(result, dict) and set(result) <= {"setup", "punchline"}
        last = None
        for last in chain.stream("Tell me a joke about cats."):
            assert isinstance(last, dict)
        assert last is not None
