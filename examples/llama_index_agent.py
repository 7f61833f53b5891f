"""LlamaIndex agent: a FunctionAgent calls a Python tool through Bitnet and uses its result.

pip install ./integrations/llama_index/llms
python examples/llama_index_agent.py
"""

from __future__ import annotations

import asyncio
import json

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.llms.bitnet import Bitnet

CAVEAT = "the demo model embedded in bitnet-backend is tiny and can be wrong"


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    # A stand-in for a weather service, so the example runs offline. JSON text, because
    # LlamaIndex hands a tool's return value to the model as str(value), and a dict's repr
    # (single quotes) is not the JSON the model reads best.
    return json.dumps({"temperature": 14, "condition": "windy"})


async def main() -> None:
    llm = Bitnet(temperature=0.0, max_new_tokens=64)  # the embedded model
    print(f"model: {llm.metadata.model_name} ({CAVEAT})")
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(fn=get_weather)], llm=llm)
    handler = agent.run("What's the weather in Oslo?")
    async for event in handler.stream_events():
        if type(event).__name__ == "ToolCallResult":
            print(f"tool: {event.tool_name}({event.tool_kwargs}) -> {event.tool_output}")
    print("answer:", str(await handler).strip())


if __name__ == "__main__":
    asyncio.run(main())
