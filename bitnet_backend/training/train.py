"""Train the embedded default model from scratch (seeded, CPU, needs the ``train`` extra).

    python -m bitnet_backend.training --precision bf16 --out bitnet_backend/data/default-model
    python -m bitnet_backend.training --recipe v1 --out DIR    # the first recipe

Steps: render a sample of the generated data and train a byte-level BPE tokenizer on it;
train BitNet b1.58 with quantization-aware training on an endless seeded stream of examples;
export the Hugging Face packed checkpoint. The same seed, step count and thread count give
the same files on the same kind of CPU and torch version (matmul kernels differ by ISA).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..testing import BOS, CHAT_TEMPLATE, EOS, EOT, special_ids, train_tokenizer_json
from ..tokenizer import Tokenizer
from . import retrieval, state, unicode_values
from . import vocab as V
from .dataset import CONTEXT, REPLY, Example, Renderer, encode, examples, pack
from .mix_v2 import examples_v2

VOCAB_SIZE = 4096
SEQ_LEN = 512
MAX_POSITIONS = 2048

# What each recipe changes; an option given on the command line wins. v2 made the model that
# ships (with --precision bf16); v1, the model before it; v2 adds the data of mix_v2 and the
# retrieval objective (contrastive.py).
STREAMS: dict[str, Callable[[int, Renderer], Iterator[Example]]] = {
    "v1": examples,
    "v2": examples_v2,
}
# v2's matmuls run in float32: bfloat16 is faster only where the CPU has bfloat16 matrix units
# (AMX); with AVX-512 BF16 alone or AVX2, float32 steps are shorter. v2 also flushes denormal
# floats to zero: the softmax's backward meets many, and each costs a slow path (see the
# CHANGELOG). v1 keeps its settings, so it still writes the model it wrote.
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "v1": {"steps": 4500, "retrieval_pairs": 0, "precision": "bf16", "flush_denormals": False},
    "v2": {"steps": 4500, "retrieval_pairs": 16, "precision": "f32", "flush_denormals": True},
}


def make_tokenizer(json_text: str) -> Tokenizer:
    """A Tokenizer for ``json_text`` with the 2B-4T chat template."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokenizer.json"
        path.write_text(json_text, encoding="utf-8")
        ids = special_ids(json_text)
        return Tokenizer(
            path,
            {"bos_token": BOS, "eos_token": EOT},
            chat_template=CHAT_TEMPLATE,
            bos_token_id=ids[BOS],
            eos_token_ids=(ids[EOS], ids[EOT]),
        )


def _word_lists(module: Any) -> list[str]:
    """Each upper-case tuple or list of strings in ``module``, as one line."""
    lists = (getattr(module, n) for n in dir(module) if n.isupper())
    return [
        " ".join(words)
        for words in lists
        if isinstance(words, tuple | list) and all(isinstance(w, str) for w in words)
    ]


def train_tokenizer(seed: int, n_examples: int = 20000, recipe: str = "v1") -> str:
    """BPE trained on rendered examples plus every word the generators know."""
    from ..testing import tokenizer_json as bootstrap

    # Rendering only needs the chat template, so a bootstrap tokenizer does.
    renderer = Renderer(make_tokenizer(bootstrap()))
    texts = [
        ex.prompt + ex.completion + "".join(between + reply for between, reply in ex.turns)
        for ex in itertools.islice(STREAMS[recipe](seed + 1, renderer), n_examples)
    ]
    words = _word_lists(V)
    if recipe != "v1":
        words += _word_lists(unicode_values)
        words += [" ".join(a + b) for a, b in unicode_values.CJK_NAMES.values()]
    return train_tokenizer_json(texts + words, VOCAB_SIZE - 3)


def batches(tokenizer: Tokenizer, args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """Per step: the packed language-model rows, and the packed retrieval texts (or None)."""
    from .contrastive import pack_texts

    ids = special_ids_of(tokenizer)
    stream = (
        encode(tokenizer, ex, ids[EOT], ids[EOS])
        for ex in STREAMS[args.recipe](args.seed, Renderer(tokenizer))
    )
    # Its own seeded generator, so the language-model stream is the same with or without it.
    rng = random.Random(f"retrieval {args.seed}")
    while True:
        texts = None
        if args.retrieval_pairs:
            pairs = retrieval.pairs(rng, args.retrieval_pairs)
            ordered = [q for q, _ in pairs] + [passage for _, passage in pairs]
            encoded = [tokenizer.encode(t, add_special=True) for t in ordered]
            texts = pack_texts(encoded, SEQ_LEN, ids[EOS])
        yield pack(stream, args.batch, SEQ_LEN, ids[EOS]), texts


def special_ids_of(tokenizer: Tokenizer) -> dict[str, int]:
    ids: dict[str, int] = {}
    for t in (BOS, EOS, EOT):
        tid = tokenizer.token_to_id(t)
        if tid is None:
            raise ValueError(f"the tokenizer has no {t}")
        ids[t] = tid
    return ids


def mean_where(values: Any, where: np.ndarray) -> Any:
    """Mean of the torch tensor ``values`` over the positions ``where`` marks (0 if none).

    ``where`` is a mask, or per-position weights (a weighted mean).
    """
    import torch

    w = torch.from_numpy(where.astype(np.float32))
    return (values * w).sum() / w.sum().clamp(min=1)


def per_example_weights(where: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """Weights over the positions ``where`` marks that give every example the same total.

    A reading answer is 3-4 tokens and a plain-text or echo example 70-80, so a mean over
    tokens hands most of the reply loss to the long examples; weighting each example's
    tokens by 1 / (its count) makes the loss a mean over examples instead.
    """
    ids = np.where(where, doc, 0).astype(np.int64)
    counts = np.bincount(ids[where], minlength=int(ids.max()) + 1)
    return np.where(where, 1.0 / np.maximum(counts[ids], 1), 0.0)


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> Path:
    import torch

    from .contrastive import retrieval_loss
    from .export import export
    from .model import BitNet, ModelShape

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(args.flush_denormals)
    t0 = time.time()
    resumed = state.load(args.resume, args) if args.resume else None
    tok_json = resumed["tokenizer"] if resumed else train_tokenizer(args.seed, recipe=args.recipe)
    tokenizer = make_tokenizer(tok_json)
    print(f"tokenizer: {tokenizer.vocab_size} tokens ({time.time() - t0:.0f} s)", flush=True)

    shape = ModelShape(
        vocab_size=VOCAB_SIZE,
        hidden_size=args.hidden,
        intermediate_size=args.ffn,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
    )
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[args.precision]
    model = BitNet(shape, MAX_POSITIONS, compute_dtype=dtype)
    if args.compile:
        # Fuses the quantizers' elementwise work (~1.3x per step). Per layer, because the
        # whole model compiled (embedding and head too) does not give the same weights from
        # one run to the next; compiled layers do.
        for layer in model.layers:
            layer.compile()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {shape} ({n_params / 1e6:.2f} M parameters)", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim == 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.95),
    )
    data = batches(tokenizer, args)
    first, seen = 0, 0
    if resumed:
        model.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        first, seen = resumed["step"], resumed["seen"]
        for _ in range(first):  # the seeded stream, drawn again up to where the run stopped
            next(data)
        print(f"resumed from {args.resume} at step {first}", flush=True)
    start, seen_at_start = time.time(), seen
    for step in range(first, args.steps):
        b, texts = next(data)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        tokens = torch.from_numpy(b.tokens)
        pos = torch.from_numpy(b.pos[:, :-1])
        doc = torch.from_numpy(b.doc[:, :-1])
        logits = model(tokens[:, :-1], pos, doc)
        # The target at t+1 must belong to the same example as position t.
        same = b.doc[:, 1:] == b.doc[:, :-1]
        target = np.where(same, b.target[:, 1:], 0).reshape(-1)
        reply = target == REPLY
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1), reduction="none"
        )
        if args.reply_loss == "example":
            reply_loss = mean_where(nll, per_example_weights(reply, b.doc[:, 1:].reshape(-1)))
        else:
            reply_loss = mean_where(nll, reply)
        context_loss = mean_where(nll, target == CONTEXT)
        loss = reply_loss + args.context_weight * context_loss
        if texts is not None:
            retrieval_part = retrieval_loss(model, texts)
            loss = loss + args.retrieval_weight * retrieval_part
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seen += int((b.doc >= 0).sum())
        if step % args.log_every == 0 or step == args.steps - 1:
            el = time.time() - start
            done = step + 1 - first
            eta = el / done * (args.steps - step - 1)
            retrieval_log = f"  retrieval {retrieval_part.item():.4f}" if texts is not None else ""
            print(
                f"step {step:5d}  loss {reply_loss.item():.4f}  context "
                f"{context_loss.item():.4f}{retrieval_log}  lr {opt.param_groups[0]['lr']:.2e}  "
                f"{(seen - seen_at_start) / el:.0f} tok/s  elapsed {el / 60:.1f} min  "
                f"eta {eta / 60:.1f} min",
                flush=True,
            )
        if args.snapshot_every and (step + 1) % args.snapshot_every == 0 and step + 1 < args.steps:
            export(model, tok_json, Path(args.out) / "snapshots" / f"step{step + 1}", MAX_POSITIONS)
        last = step + 1 == args.steps
        if args.save_state and (last or (args.state_every and (step + 1) % args.state_every == 0)):
            state.save(
                args.save_state,
                args=args,
                step=step + 1,
                seen=seen,
                tokenizer=tok_json,
                model=model.state_dict(),
                optimizer=opt.state_dict(),
            )
    out = export(model, tok_json, Path(args.out), MAX_POSITIONS)
    for f in sorted(p for p in out.iterdir() if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        print(f"{f.name:28s} {f.stat().st_size:>10d} B  sha256 {digest}")
    print(f"done in {(time.time() - t0) / 60:.1f} min", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m bitnet_backend.training``."""
    args = parse_options(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    train(args)
    return 0


def _recipe_defaults(name: str) -> str:
    """``default: <value> for v1, <value> for v2`` from RECIPE_DEFAULTS, for an option's help."""
    values = ", ".join(f"{d[name]} for {recipe}" for recipe, d in RECIPE_DEFAULTS.items())
    return f"default: {values}"


def parse_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options of a run: the command line, then the recipe's defaults for the rest."""
    p = argparse.ArgumentParser(prog="python -m bitnet_backend.training", description=__doc__)
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    p.add_argument(
        "--recipe",
        choices=sorted(STREAMS),
        default="v2",
        help="data and objectives: v2 (the shipped model: v1's data plus structured output, "
        "non-ASCII values, tool loops, plain prompts, retrieval) or v1 (the model before it)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help=_recipe_defaults("steps"))
    p.add_argument("--batch", type=int, default=16, help="rows of 512 tokens per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument(
        "--context-weight",
        type=float,
        default=0.3,
        help="weight of predicting prompt tokens, relative to reply tokens",
    )
    p.add_argument(
        "--reply-loss",
        choices=("example", "token"),
        default="token",
        help="average the reply loss over examples (each counts the same) or over tokens",
    )
    p.add_argument(
        "--retrieval-pairs",
        type=int,
        default=None,
        help="question/passage pairs per step for the retrieval objective (0: off; "
        f"{_recipe_defaults('retrieval_pairs')})",
    )
    p.add_argument(
        "--retrieval-weight",
        type=float,
        default=0.2,
        help="weight of the retrieval loss, relative to reply tokens",
    )
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--ffn", type=int, default=640)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch threads (results depend on it)")
    p.add_argument(
        "--precision",
        choices=("bf16", "f32"),
        default=None,
        help="matmul operand type; the ternary products are exact in both, bf16 rounds their "
        f"sums ({_recipe_defaults('precision')})",
    )
    p.add_argument(
        "--flush-denormals",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"treat denormal floats as zero (faster; {_recipe_defaults('flush_denormals')})",
    )
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.compile the layers (needs a C++ compiler)",
    )
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--snapshot-every", type=int, default=0, help="export a snapshot every N steps")
    p.add_argument(
        "--save-state",
        type=Path,
        default=None,
        help="save the training state here (at the end, and every --state-every steps)",
    )
    p.add_argument("--state-every", type=int, default=0, help="save the state every N steps")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="carry on from a state saved by --save-state (same options)",
    )
    args = p.parse_args(argv)
    for name, value in RECIPE_DEFAULTS[args.recipe].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.retrieval_pairs == 1 or args.retrieval_pairs < 0:
        p.error("--retrieval-pairs must be 0 (off) or at least 2 (a passage needs negatives)")
    return args
