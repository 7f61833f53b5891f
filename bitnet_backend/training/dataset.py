"""Training examples: chats rendered exactly as inference renders them, tokenized and packed.

An example is a prompt and a completion (and, for a chat that goes on, later turns: the
template text up to each next reply, and that reply). Chat prompts go through the same path as
``Model.chat`` (``ToolProtocol.prompt`` for tools, then the model's chat template), and the
completion is tokenized on its own, because at inference the prompt ends at "Assistant: " and
the reply is generated from there; tokenizing prompt + reply as one string would teach token
boundaries the model never meets when it runs.

Every token after the first is a training target: reply tokens (and every token of plain
text) are REPLY targets, prompt tokens are CONTEXT targets that the trainer weighs less.
Predicting the prompt gives a small model far more signal than the few reply tokens alone,
and names that recur in a prompt are what teaches it to copy from its context.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..constraints import ToolProtocol
from ..tokenizer import Tokenizer
from . import instructions, passages, tools
from .passages import Passage

EOT = "<|eot_id|>"


@dataclass(frozen=True)
class Example:
    """One training or evaluation example."""

    kind: str  # "rag", "rag_turns", "tool_call", "tool_answer", "instruction", "completion",
    # "text", "echo"
    prompt: str  # template output (chat) or raw text
    completion: str  # what the model should write ("" for plain text)
    chat: bool  # prompt is a rendered chat (already holds BOS)
    answer: Any = None  # gold answer for evaluation (span, or {"name", "arguments"})
    # Later turns of a chat: (the template text up to the next reply, that reply).
    turns: tuple[tuple[str, str], ...] = ()


LLAMA_INDEX_SYSTEM = (
    "You are an expert Q&A system that is trusted around the world.\n"
    "Always answer the query using the provided context information, and not prior knowledge.\n"
    "Some rules to follow:\n"
    "1. Never directly reference the given context in your answer.\n"
    "2. Avoid statements like 'Based on the context, ...' or 'The context information ...' "
    "or anything along those lines."
)
SYSTEMS = (
    "You are a helpful assistant.",
    "You are a helpful assistant. Answer briefly.",
    "You are a concise assistant.",
    "Answer the user's questions.",
)
UNKNOWN = "I don't know."


def _context(rng: random.Random, docs: Sequence[Passage]) -> str:
    parts = []
    for d in docs:
        r = rng.random()
        if r < 0.15:
            parts.append(
                f"file_path: docs/{d.title.lower().replace(' ', '_')[:24]}.txt\n\n{d.text}"
            )
        elif r < 0.25:
            parts.append(f"{d.title}\n{d.text}")
        else:
            parts.append(d.text)
    return "\n\n".join(parts)


def rag_messages(rng: random.Random, context: str, question: str) -> list[dict[str, str]]:
    """A question about ``context`` in one of the prompt styles RAG frameworks use."""
    style = rng.randrange(6)
    if style == 0:
        return [{"role": "user", "content": f"Context:\n{context}\n\nQuestion: {question}"}]
    if style == 1:
        return [
            {
                "role": "user",
                "content": "Answer the question based only on the following context:\n"
                f"{context}\n\nQuestion: {question}",
            }
        ]
    if style == 2:
        return [
            {"role": "system", "content": LLAMA_INDEX_SYSTEM},
            {
                "role": "user",
                "content": "Context information is below.\n---------------------\n"
                f"{context}\n---------------------\nGiven the context information and not "
                f"prior knowledge, answer the query.\nQuery: {question}\nAnswer: ",
            },
        ]
    if style == 3:
        return [
            {
                "role": "system",
                "content": "Use the following pieces of retrieved context to answer the "
                "question. If you don't know the answer, say that you don't know.\n\n"
                f"{context}",
            },
            {"role": "user", "content": question},
        ]
    if style == 4:
        return [{"role": "user", "content": f"{context}\n\n{question}"}]
    return [
        {"role": "system", "content": rng.choice(SYSTEMS)},
        {"role": "user", "content": f"Read this:\n{context}\n\n{question}"},
    ]


class Renderer:
    """Turns chats into prompt text as ``Model.chat`` does."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def chat(
        self,
        messages: list[dict[str, Any]],
        tool_list: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = "auto",
    ) -> str:
        protocol = ToolProtocol.from_request(tool_list, tool_choice)
        rendered, shown = protocol.prompt(messages, template_uses_tools=False)
        return self.tokenizer.apply_chat_template(rendered, tools=shown, add_generation_prompt=True)


def call_text(name: str, arguments: dict[str, Any]) -> str:
    """A call exactly as the tool grammar makes the model write it."""
    return json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)


def rag_example(rng: random.Random, r: Renderer) -> Example:
    n_docs = rng.choice((1, 1, 2, 2, 3))
    docs = [passages.passage(rng) for _ in range(n_docs)]
    target = rng.choice(docs)
    question, answer = rng.choice(target.qa)
    if rng.random() < 0.05 and n_docs < 3:
        # A question about something the context does not mention.
        other = passages.passage(rng)
        if other.title not in {d.title for d in docs}:
            question, answer = rng.choice(other.qa)[0], UNKNOWN
    messages = rag_messages(rng, _context(rng, docs), question)
    return Example("rag", r.chat(messages), answer, True, answer)


def rag_turns_example(rng: random.Random, r: Renderer) -> Example:
    """Several questions about one context, asked one after the other in the same chat.

    Every answer is a reading target, so one context (most of the example's tokens) teaches
    two to four lookups instead of one, often in different passages of the context.
    """
    docs = [passages.passage(rng) for _ in range(rng.choice((1, 2, 2, 3, 3)))]
    pool = [qa for d in docs for qa in d.qa]
    rng.shuffle(pool)
    # One question per answer: a paraphrase of an earlier question is answered by copying
    # the earlier reply, not by reading.
    by_answer = {answer: question for question, answer in reversed(pool)}
    asked = [(q, a) for a, q in by_answer.items()][: rng.randint(2, 4)]
    messages = rag_messages(rng, _context(rng, docs), asked[0][0])
    prompt = r.chat(messages)
    rendered, turns = prompt, []
    for (_, previous), (question, answer) in itertools.pairwise(asked):
        messages += [
            {"role": "assistant", "content": previous},
            {"role": "user", "content": question},
        ]
        full = r.chat(messages)
        head = rendered + previous + EOT
        if not full.startswith(head):
            raise ValueError("the chat template does not extend a chat by appending turns")
        turns.append((full[len(head) :], answer))
        rendered = full
    return Example("rag_turns", prompt, asked[0][1], True, asked[0][1], tuple(turns))


def completion_example(rng: random.Random) -> Example:
    doc = passages.passage(rng)
    question, answer = rng.choice(doc.qa)
    prompt = f"{doc.text}\n\nQuestion: {question}\nAnswer:"
    return Example("completion", prompt, " " + answer, False, answer)


def text_example(rng: random.Random) -> Example:
    docs = [passages.passage(rng).text for _ in range(rng.randint(1, 3))]
    return Example("text", "\n\n".join(docs), "", False)


def instruction_example(rng: random.Random, r: Renderer) -> Example:
    question, answer = instructions.instruction(rng)
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
    messages.append({"role": "user", "content": question})
    tool_list = None
    if rng.random() < 0.3:  # tools offered but not needed: reply in text
        tool_list = tools.distractors(rng, tools.tool_case(rng), rng.randint(1, 3))
    return Example("instruction", r.chat(messages, tool_list), answer, True, answer)


def _call_id(rng: random.Random) -> str:
    return "call_" + "".join(rng.choice("0123456789abcdef") for _ in range(24))


def tool_examples(
    rng: random.Random, r: Renderer, case: tools.ToolCase | None = None
) -> list[Example]:
    """A call, and (usually) the reply that uses the tool's result (``case``: a random one)."""
    case = case or tools.tool_case(rng)
    tool_list = [case.tool, *tools.distractors(rng, case, rng.choice((0, 1, 1, 2, 2, 3)))]
    rng.shuffle(tool_list)
    choice: Any = "auto"
    u = rng.random()
    if u < 0.12:
        choice = "required"
    elif u < 0.25:
        choice = {"name": case.name}
    messages: list[dict[str, Any]] = []
    if rng.random() < 0.3:
        messages.append({"role": "system", "content": rng.choice(SYSTEMS)})
    messages.append({"role": "user", "content": case.request})
    gold = {"name": case.name, "arguments": case.arguments}
    out = [
        Example(
            "tool_call",
            r.chat(messages, tool_list, choice),
            call_text(case.name, case.arguments),
            True,
            gold,
        )
    ]
    if rng.random() < 0.7:
        call_id = _call_id(rng)
        call = {
            "id": call_id,
            "type": "function",
            "function": {"name": case.name, "arguments": json.dumps(case.arguments)},
        }
        messages = [
            *messages,
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": case.result},
        ]
        out.append(
            Example("tool_answer", r.chat(messages, tool_list), case.answer, True, case.answer)
        )
    return out


def echo_example(rng: random.Random) -> Example:
    """A passage written twice: its second half is free to predict only by copying."""
    text = passages.passage(rng).text
    return Example("echo", f"{text}\n\n{text}", "", False)


# A kind of example: draws what it needs from the stream's rng, renders chats with the renderer
# and returns the example(s) it made (a tool call can bring its answer along).
KindGenerator = Callable[[random.Random, Renderer], Iterable[Example]]
# A recipe's data: (kind, share, generator) in a fixed order. The order and the shares are part
# of the seeded stream: rng.choices draws over them, so changing either changes every example.
Mix = tuple[tuple[str, float, KindGenerator], ...]


def one(make: Callable[[random.Random, Renderer], Example]) -> KindGenerator:
    """A generator of one rendered example."""
    return lambda rng, renderer: (make(rng, renderer),)


def unrendered(make: Callable[[random.Random], Example]) -> KindGenerator:
    """A generator of one example that is plain text (no chat to render)."""
    return lambda rng, _renderer: (make(rng),)


MIX: Mix = (
    ("rag", 0.30, one(rag_example)),
    ("rag_turns", 0.16, one(rag_turns_example)),
    ("tool", 0.27, tool_examples),
    ("instruction", 0.11, one(instruction_example)),
    ("completion", 0.04, unrendered(completion_example)),
    ("text", 0.06, unrendered(text_example)),
    ("echo", 0.06, unrendered(echo_example)),
)


def examples(seed: int, renderer: Renderer, mix: Mix = MIX) -> Iterator[Example]:
    """An endless, seeded stream of examples in the proportions of ``mix`` (recipe v1's: MIX).

    Each step draws a kind by its share, then lets that kind's generator draw the rest from
    the same rng: the stream is a function of the seed, the mix and the chat template alone.
    """
    weights = [w for _, w, _ in mix]
    if not all(w >= 0 for w in weights) or not sum(weights) > 0:
        raise ValueError(f"a mix needs shares >= 0 and some share > 0, got {weights}")
    generators = [g for _, _, g in mix]
    rng = random.Random(seed)
    while True:
        generate = rng.choices(generators, weights)[0]
        yield from generate(rng, renderer)


# What predicting a token teaches (the trainer weighs the two kinds of target apart).
NOT_TARGET, CONTEXT, REPLY = 0, 1, 2


def encode(
    tokenizer: Tokenizer, ex: Example, eot_id: int, eos_id: int
) -> tuple[list[int], list[int]]:
    """Token ids and the target kind of each (NOT_TARGET, CONTEXT or REPLY)."""
    if not ex.completion:  # plain text: language modelling on every token
        ids = [*tokenizer.encode(ex.prompt, add_special=True), eos_id]
        return ids, [NOT_TARGET] + [REPLY] * (len(ids) - 1)
    prompt = tokenizer.encode(ex.prompt, add_special=not ex.chat)
    reply = [*tokenizer.encode(ex.completion, add_special=False), eot_id]
    ids = prompt + reply
    kinds = [NOT_TARGET] + [CONTEXT] * (len(prompt) - 1) + [REPLY] * len(reply)
    for between, answer in ex.turns:
        # Pieces are tokenized apart: inference, too, starts a fresh token after <|eot_id|>
        # and generates the reply after "Assistant: ".
        context = tokenizer.encode(between, add_special=False)
        reply = [*tokenizer.encode(answer, add_special=False), eot_id]
        ids += context + reply
        kinds += [CONTEXT] * len(context) + [REPLY] * len(reply)
    return ids, kinds


@dataclass
class PackedBatch:
    """Rows of ``seq_len`` tokens; ``doc`` numbers the example each token belongs to."""

    tokens: np.ndarray  # int64 [rows, seq_len + 1]
    target: np.ndarray  # int8 [rows, seq_len + 1], NOT_TARGET, CONTEXT or REPLY
    doc: np.ndarray  # int32 [rows, seq_len + 1]
    pos: np.ndarray  # int64 [rows, seq_len + 1], position within its example


def pack(
    encoded: Iterator[tuple[list[int], list[int]]], rows: int, seq_len: int, pad_id: int
) -> PackedBatch:
    """Greedily fill ``rows`` rows with whole examples (examples longer than a row are dropped)."""
    width = seq_len + 1
    tokens = np.full((rows, width), pad_id, dtype=np.int64)
    target = np.zeros((rows, width), dtype=np.int8)
    doc = np.full((rows, width), -1, dtype=np.int32)
    pos = np.zeros((rows, width), dtype=np.int64)
    pending: tuple[list[int], list[int]] | None = None
    n_doc = 0
    for row in range(rows):
        used = 0
        while True:
            item = pending if pending is not None else next(encoded)
            pending = None
            ids, m = item
            if len(ids) > width:
                continue
            if used + len(ids) > width:
                pending = item
                break
            tokens[row, used : used + len(ids)] = ids
            target[row, used : used + len(ids)] = m
            doc[row, used : used + len(ids)] = n_doc
            pos[row, used : used + len(ids)] = np.arange(len(ids))
            n_doc += 1
            used += len(ids)
    return PackedBatch(tokens, target, doc, pos)
