#!/usr/bin/env bash
# The command line on the embedded default model (no --model): offline, a second or two each.
# run applies the chat template (--chat, the default) unless --raw asks for plain completion.
set -euo pipefail

bitnet info
bitnet run --chat "What is the capital of France?"
bitnet run --chat --max-tokens 16 "$(printf 'Context:\nIda Novak is a pilot. She lives in Riga.\n\nQuestion: Where does Ida Novak live?')"
bitnet run --raw "Leo Park is a chemist. He lives in Oslo.

Question: Where does Leo Park live?
Answer:" --max-tokens 8
