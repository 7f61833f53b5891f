"""LlamaIndex agent: a FunctionAgent calls a Python tool through Bitnet and uses its result.

pip install ./integrations/llama_index/llms
python examples/llama_index_agent.py
"""

from __future__ import annotations

import asyncio

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.bitnet import Bitnet


def get_weather(city: str) -> dict[str, object]:
    """Get the current weather in a city."""
    # A stand-in for a weather service, so the example runs offline.
    return {"temperature": 14, "condition": "windy"}


async def main() -> None:
    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(fn=get_weather)],
        llm=Bitnet(temperature=0.0, max_new_tokens=64),
    )
    handler = agent.run("What's the weather in Oslo?")
    async for event in handler.stream_events():
        if type(event).__name__ == "ToolCallResult":
            print(f"tool: {event.tool_name}({event.tool_kwargs}) -> {event.tool_output}")
    print("answer:", str(await handler).strip())


if __name__ == "__main__":
    asyncio.run(main())
