"""The test tokenizer: a small byte-level BPE with llama-3 special tokens and 2B-4T's chat
template, trained on a built-in English corpus (deterministic).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable

BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
# The chat template of microsoft/bitnet-b1.58-2B-4T.
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)
# llama-3's pre-tokenizer split pattern.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_BPE_VOCAB = 509  # + 3 special tokens = 512

_CORPUS = """\
The sun rose slowly over the quiet valley, and the farmers walked out to their fields.
A small river ran past the old mill, where children played in the shallow water.
In the morning the market opened early. People bought bread, cheese, apples and fresh fish.
She asked him whether he had finished the report, and he said that it would be ready soon.
The library was full of students reading books about history, science and mathematics.
Computers process information by following instructions written in programming languages.
A function takes some input, does a little work, and returns a result to the caller.
Good software is tested carefully, because small mistakes can cause large problems later.
The weather today is cloudy with a chance of rain in the afternoon and strong winds tonight.
Please remember to bring your umbrella, your keys and your phone when you leave the house.
The cat sat on the warm windowsill and watched the birds in the garden below.
Our team meets every Monday to discuss progress, plan the week and answer questions.
Water boils at one hundred degrees Celsius at sea level, but at a lower temperature on a mountain.
The train to the city leaves at eight o'clock and arrives a little after nine.
He opened the window to let in the fresh air, then sat down to write a long letter.
Language models predict the next word in a sentence from the words that came before it.
Music, painting and poetry have helped people express their feelings for thousands of years.
The recipe needs two cups of flour, one egg, a spoon of sugar and a pinch of salt.
When you travel abroad, it is useful to learn a few words of the local language.
The museum is open from ten in the morning until six in the evening, except on holidays.
I think that we should start the meeting now, because everyone is already here.
What time is it? It's almost noon, so let's have lunch together in the park.
They've been working on the new bridge for two years, and it'll be finished next spring.
Thank you very much for your help. You're welcome, it was a pleasure to assist you.
Can you tell me how to get to the station? Walk straight ahead and turn left at the bank.
The answer to the question is simple: read the instructions first, then try again.
User: Hello, who are you?
Assistant: I am a helpful assistant. How can I help you today?
User: Write a short poem about the sea.
Assistant: The sea is wide, the sea is deep, it sings the sailors off to sleep.
Numbers such as 12, 345, 2024 and 3.14 appear in many kinds of text and tables.
"""
_SUBJECTS = ["The teacher", "A young girl", "My neighbour", "The old man", "Our doctor", "Everyone"]
_VERBS = ["reads", "writes", "likes", "finds", "remembers", "explains", "builds", "shares"]
_OBJECTS = [
    "a good story",
    "the new computer",
    "simple answers",
    "the morning news",
    "a small garden",
    "the history of science",
]
_ENDINGS = ["every day.", "with great care.", "at home.", "before dinner.", "in the library."]


def corpus() -> list[str]:
    """The built-in English text the test tokenizer is trained on (deterministic)."""
    lines = _CORPUS.splitlines()
    generated = [
        f"{s} {v} {o} {e}"
        for s, v, o, e in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _ENDINGS)
    ]
    return lines + generated[::7]


@functools.lru_cache(maxsize=1)
def tokenizer_json() -> str:
    """The test tokenizer: ``train_tokenizer_json`` on the built-in corpus."""
    return train_tokenizer_json(corpus(), _BPE_VOCAB)


def train_tokenizer_json(lines: Iterable[str], bpe_vocab: int) -> str:
    """A byte-level BPE tokenizer.json with llama-3 special tokens appended after the BPE vocab.

    Every UTF-8 string round-trips (the 256 byte symbols are in the alphabet); encoding adds
    <|begin_of_text|> like llama-3's TemplateProcessing.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    tok.add_special_tokens([BOS, EOS, EOT])
    bos = tok.token_to_id(BOS)
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS} $A",
                pair=f"{BOS} $A {BOS}:1 $B:1",
                special_tokens=[(BOS, bos)],
            ),
        ]
    )
    return str(tok.to_str(pretty=True))


def special_ids(tokenizer: str) -> dict[str, int]:
    """Special token -> id in a tokenizer.json text."""
    added = json.loads(tokenizer)["added_tokens"]
    return {t["content"]: int(t["id"]) for t in added}


def tokenizer_special_ids() -> dict[str, int]:
    return special_ids(tokenizer_json())


def tokenizer_size() -> int:
    """Number of tokens of the test tokenizer (BPE vocab + special tokens)."""
    return max(tokenizer_special_ids().values()) + 1
