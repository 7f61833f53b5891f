"""Token log-probabilities (``logprobs=N``) on LlamaIndex's responses."""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.llms.bitnet import Bitnet

PROMPT = "Name a fruit."
MESSAGES = [ChatMessage(role=MessageRole.USER, content=PROMPT)]


def test_complete_reports_each_tokens_alternatives(llm: Bitnet) -> None:
    want = llm.loaded_model.chat(
        [{"role": "user", "content": PROMPT}],
        max_tokens=llm.max_new_tokens,
        temperature=0.0,
        logprobs=3,
    )
    assert want.logprobs is not None
    response = llm.complete(PROMPT, logprobs=3)
    assert response.logprobs is not None and len(response.logprobs) == len(want.token_ids)
    for alternatives, e in zip(response.logprobs, want.logprobs, strict=True):
        assert [(a.token, a.logprob, a.bytes) for a in alternatives] == [
            (a.token, a.logprob, list(a.bytes)) for a in e.top_logprobs
        ]
    assert llm.complete(PROMPT).logprobs is None


def test_chat_with_no_alternatives_reports_each_token_alone(llm: Bitnet) -> None:
    response = llm.chat(MESSAGES, logprobs=0)
    assert response.logprobs is not None and all(len(t) == 1 for t in response.logprobs)
    streamed = [t for r in llm.stream_chat(MESSAGES, logprobs=0) for t in r.logprobs or []]
    assert streamed == response.logprobs


def test_generate_kwargs_ask_for_logprobs_on_streams(model_source: str | None) -> None:
    llm = Bitnet(model=model_source, max_new_tokens=12, temperature=0.0)
    asked = Bitnet(
        model=model_source, max_new_tokens=12, temperature=0.0, generate_kwargs={"logprobs": 2}
    )
    whole = asked.complete(PROMPT).logprobs
    assert whole is not None and all(len(t) == 2 for t in whole)
    assert [t for r in asked.stream_complete(PROMPT) for t in r.logprobs or []] == whole
    assert all(r.logprobs is None for r in llm.stream_complete(PROMPT))
