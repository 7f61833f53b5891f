"""LangChain tool calling: ChatBitnet picks a tool, the loop runs it, and the model answers
from the result. Offline.

pip install ./integrations/langchain
python examples/langchain_tools.py
"""

from __future__ import annotations

from langchain_bitnet import ChatBitnet
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.tools import tool


@tool
def get_weather(city: str) -> dict[str, object]:
    """Get the current weather in a city."""
    # A stand-in for a weather service, so the example runs offline.
    return {"temperature": 9, "condition": "rainy"}


@tool
def convert_currency(amount: float, currency: str) -> dict[str, object]:
    """Convert an amount of euros into another currency."""
    return {"amount": round(amount * 1.08, 2), "currency": currency}


CAVEAT = "the demo model embedded in bitnet-backend is tiny and can be wrong"
TOOLS = {t.name: t for t in (get_weather, convert_currency)}


def main() -> None:
    chat = ChatBitnet(temperature=0, max_tokens=64)
    print(f"model: {chat.model_name} ({CAVEAT})")
    llm = chat.bind_tools(list(TOOLS.values()))
    messages: list[BaseMessage] = [HumanMessage("What's the weather like in Madrid?")]
    for _ in range(3):  # a call, then the answer; a bound on the loop all the same
        reply = llm.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            print(f"tool call: {call['name']} {call['args']}")
            messages.append(TOOLS[call["name"]].invoke(call))  # a ToolMessage
    print("answer:", str(messages[-1].content).strip())


if __name__ == "__main__":
    main()
