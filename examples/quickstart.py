"""Quick start: the embedded default model, offline, in a few seconds.

    python examples/quickstart.py

Answers a question about a passage, calls a tool and uses its result, and fills a JSON
schema. Pass a checkpoint directory or hub id as the first argument to use another model.
"""

from __future__ import annotations

import json
import sys

import bitnet_backend as bb

PASSAGE = (
    "Mara Lind is a carpenter. She lives in Porto. She has a dog named Biscuit. "
    "Her favourite colour is green."
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def fake_weather(city: str) -> dict[str, object]:
    """Stands in for a weather service so the example runs offline."""
    return {"temperature": 21, "condition": "sunny"}


def main() -> None:
    model = bb.load(sys.argv[1] if len(sys.argv) > 1 else None)
    info = model.info
    print(f"model: {info['source']}, {info['parameters']:,} parameters, {info['backend']} backend")
    if info["source"] == "default":
        print("(the demo model embedded in bitnet-backend is tiny and can be wrong)")

    # 1. Reading: answer from the text in the prompt.
    question = f"Context:\n{PASSAGE}\n\nQuestion: Where does Mara Lind live?"
    reply = model.chat([{"role": "user", "content": question}], max_tokens=16, temperature=0)
    print("reading:", reply.message["content"])

    # 2. Tool call, then an answer that uses the tool's result.
    messages = [{"role": "user", "content": "What's the weather in Lisbon?"}]
    reply = model.chat(messages, tools=[WEATHER_TOOL], max_tokens=48, temperature=0)
    if reply.finish_reason == "tool_calls":
        call = reply.tool_calls[0]
        print("tool call:", call["function"]["name"], call["function"]["arguments"])
        result = fake_weather(**call["function"]["arguments"])
        messages += [
            reply.message,
            {"role": "tool", "tool_call_id": call["id"], "content": json.dumps(result)},
        ]
        reply = model.chat(messages, tools=[WEATHER_TOOL], max_tokens=48, temperature=0)
    print("answer:", reply.message["content"])

    # 3. Structured output: every token keeps the text valid JSON for the schema. An enum
    # and a boolean: the schema picks the words, the model only chooses among them.
    schema = {
        "type": "object",
        "properties": {
            "city": {"enum": ["Lisbon", "Porto", "Riga", "Oslo"]},
            "has_dog": {"type": "boolean"},
        },
        "required": ["city", "has_dog"],
        "additionalProperties": False,
    }
    question = (
        f"Context:\n{PASSAGE}\n\nQuestion: Where does Mara Lind live, and does she have a dog?"
    )
    out = model.chat(
        [{"role": "user", "content": question}], json_schema=schema, max_tokens=32, temperature=0
    )
    print("json:", json.loads(out.message["content"]))
    model.close()


if __name__ == "__main__":
    main()
