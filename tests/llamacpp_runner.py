"""llama.cpp's own logits and greedy tokens on a GGUF, through llama-cpp-python.

    python tests/llamacpp_runner.py MODEL.gguf OUT.npy --prompt 1,2,3 [--prompt ...] --gen 8

Writes the logits of every position of every prompt (float32 [positions, vocab], prompts
one after another) to OUT.npy and prints {"n_vocab": V, "generated": [...]}: ``--gen``
greedy tokens after the first prompt. Each prompt starts from an empty KV cache.

It runs as a child process of the tests: llama.cpp aborts the whole process on a file it
cannot build a graph for, which must fail one test rather than end the test run.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--prompt", action="append", required=True, help="comma-separated ids")
    p.add_argument("--gen", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    prompts = [[int(t) for t in s.split(",")] for s in args.prompt]

    import llama_cpp

    n_ctx = max(len(ids) for ids in prompts) + args.gen
    llm = llama_cpp.Llama(
        args.model,
        n_ctx=n_ctx,
        n_batch=n_ctx,
        n_ubatch=n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        logits_all=True,
        # f32 K/V and no flash attention: their f16 rounding is not what is compared.
        type_k=llama_cpp.GGML_TYPE_F32,
        type_v=llama_cpp.GGML_TYPE_F32,
        flash_attn=False,
        verbose=False,
    )
    rows = []
    generated: list[int] = []
    for k, ids in enumerate(prompts):
        llm.reset()
        llm.eval(ids)
        rows.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
        if k == 0:
            for _ in range(args.gen):
                tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                generated.append(tok)
                llm.eval([tok])
    np.save(args.out, np.concatenate(rows))
    json.dump({"n_vocab": int(llm.n_vocab()), "generated": generated}, sys.stdout)
    llm.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
