"""The ``bitnet`` command: run a prompt, chat, inspect a model, list backend plugins.

    bitnet run "The capital of France is" --model microsoft/bitnet-b1.58-2B-4T
    bitnet chat --model ./my-checkpoint --temperature 0.7
    bitnet info ./my-checkpoint
    bitnet plugins

User errors print ``bitnet: error: <message>`` and exit with status 2; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__, plugins
from .checkpoints.gguf_ternary import TERNARY_TYPES
from .errors import BitnetError
from .model import Model, load

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _common_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "-m",
        metavar="SOURCE",
        help="checkpoint directory or Hugging Face hub id (default: the bundled model)",
    )
    g.add_argument("--backend", default="auto", help="backend name (default: auto)")
    g.add_argument("--threads", type=int, metavar="N", help="worker threads (default: all CPUs)")
    g.add_argument("--ctx", type=int, metavar="N", help="context window in tokens")
    g.add_argument(
        "--preset",
        choices=("quality", "speed", "memory"),
        help="cpu backend: weight layout + head + KV cache preset",
    )
    g.add_argument(
        "--lm-head", choices=("auto", "int8", "q6", "q4", "f32"), help="cpu backend: head storage"
    )
    g.add_argument(
        "--layout", choices=("auto", "i2_r16", "i1_r16"), help="cpu backend: ternary layout"
    )
    g.add_argument("--kv-cache", choices=("f32", "bf16"), help="cpu backend: KV cache type")
    g.add_argument(
        "--exact-logits",
        type=int,
        metavar="N",
        help="cpu backend: top logits per position recomputed in float32 (0: none)",
    )
    return p


def _sampling_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("generation")
    g.add_argument("--max-tokens", type=int, metavar="N", help="tokens to generate (-1: no limit)")
    g.add_argument("--temperature", type=float, metavar="T", help="0 = greedy")
    g.add_argument("--top-k", type=int, metavar="K")
    g.add_argument("--top-p", type=float, metavar="P")
    g.add_argument("--min-p", type=float, metavar="P")
    g.add_argument("--repeat-penalty", type=float, metavar="R")
    g.add_argument("--seed", type=int, metavar="S")
    g.add_argument("--stop", action="append", metavar="TEXT", help="stop string (may be repeated)")
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``bitnet`` command."""
    common, sampling = _common_parser(), _sampling_parser()
    parser = argparse.ArgumentParser(
        prog="bitnet", description="Run BitNet b1.58 models on the CPU."
    )
    parser.add_argument("--version", action="version", version=f"bitnet-backend {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", parents=[common, sampling], help="complete a prompt, streaming to stdout"
    )
    run.add_argument("prompt", metavar="PROMPT", help="the prompt ('-' reads it from stdin)")
    run.add_argument("--chat", action="store_true", help="send PROMPT as a user chat message")
    run.add_argument("--verbose", "-v", action="store_true", help="token counts on stderr")

    chat = sub.add_parser(
        "chat", parents=[common, sampling], help="interactive chat (/exit or EOF ends it)"
    )
    chat.add_argument("--system", metavar="TEXT", help="system message")

    info = sub.add_parser("info", parents=[common], help="describe a model")
    info.add_argument("source", nargs="?", metavar="MODEL", help="same as --model")
    info.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("plugins", help="list backend plugins and their availability")

    convert = sub.add_parser(
        "convert", help="save a checkpoint in the engine's kernel layout (fast later loads)"
    )
    convert.add_argument("source", metavar="SOURCE", help="checkpoint directory or hub id")
    convert.add_argument("output", metavar="OUT", help="directory (with --to gguf: file) to write")
    convert.add_argument("--lm-head", choices=("auto", "int8", "q6", "q4", "f32"), default="auto")
    convert.add_argument("--layout", choices=("auto", "i2_r16", "i1_r16"), default="auto")
    convert.add_argument("--threads", type=int, metavar="N", default=1)
    convert.add_argument(
        "--to",
        choices=("layout", "gguf"),
        default="layout",
        help="layout: a directory in the kernel layout; gguf: one GGUF file (OUT) for "
        "llama.cpp / bitnet.cpp",
    )
    convert.add_argument(
        "--type", choices=tuple(TERNARY_TYPES), default="tq2_0", help="ternary type of a GGUF file"
    )
    return parser


def _progress_wanted() -> bool | None:
    # A bar on an interactive terminal always; otherwise load() decides by checkpoint size.
    return True if sys.stderr.isatty() else None


def _load(args: argparse.Namespace, source: str | None = None) -> Model:
    src = source if source is not None else args.model
    options: dict[str, Any] = {}
    if getattr(args, "preset", None):
        options["preset"] = args.preset
    if getattr(args, "lm_head", None):
        options["lm_head"] = args.lm_head
    if getattr(args, "layout", None):
        options["weight_layout"] = args.layout
    if getattr(args, "kv_cache", None):
        options["kv_cache"] = args.kv_cache
    if getattr(args, "exact_logits", None) is not None:
        options["exact_logits"] = args.exact_logits
    return load(
        src,
        backend=args.backend,
        n_threads=args.threads,
        n_ctx=args.ctx,
        progress=_progress_wanted(),
        **options,
    )


def _generation_options(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "max_tokens",
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "repeat_penalty",
        "seed",
        "stop",
    )
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _write(out: TextIO, text: str) -> None:
    out.write(text)
    out.flush()


def cmd_run(args: argparse.Namespace) -> int:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    options = _generation_options(args)
    with _load(args) as model:
        last: Any = None
        if args.chat:
            for chat_chunk in model.stream_chat([{"role": "user", "content": prompt}], **options):
                _write(sys.stdout, chat_chunk.content)
                last = chat_chunk
        else:
            for chunk in model.stream(prompt, **options):
                _write(sys.stdout, chunk.text)
                last = chunk
        _write(sys.stdout, "\n")
        if args.verbose and last is not None and last.usage is not None:
            u = last.usage
            print(
                f"[{u['prompt_tokens']} prompt tokens, {u['completion_tokens']} generated, "
                f"finish: {last.finish_reason}]",
                file=sys.stderr,
            )
    return 0


def _read_line(interactive: bool) -> str | None:
    if interactive:
        try:
            return input(">>> ")
        except EOFError:
            return None
    line = sys.stdin.readline()
    return None if line == "" else line.rstrip("\n")


def cmd_chat(args: argparse.Namespace) -> int:
    options = _generation_options(args)
    interactive = sys.stdin.isatty()
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    with _load(args) as model:
        if interactive:
            print("Chat with the model. /exit or Ctrl-D ends, /clear forgets.", file=sys.stderr)
        while True:
            line = _read_line(interactive)
            if line is None:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/exit", "/quit"):
                break
            if text == "/clear":
                del history[1 if args.system else 0 :]
                continue
            history.append({"role": "user", "content": line})
            reply: list[str] = []
            for chunk in model.stream_chat(history, **options):
                reply.append(chunk.content)
                _write(sys.stdout, chunk.content)
            _write(sys.stdout, "\n")
            history.append({"role": "assistant", "content": "".join(reply)})
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _load(args, args.source if args.source is not None else args.model) as model:
        info = model.info
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    engine = info.pop("engine", {})
    width = max(len(k) for k in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    for key, value in engine.items():
        if key not in info:
            print(f"{'engine.' + key:<{width}}  {value}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    backends = plugins.list_backends()
    failures = plugins.plugin_failures()
    print("backends (highest priority first; 'auto' picks the first available):")
    if not backends:
        print("  (none)")
    for b in backends:
        state = "available" if b.available else f"unavailable: {b.reason}"
        print(f"  {b.name:<12} priority {b.priority:<4} {state}")
        origin = "" if b.plugin == b.name else f" [plugin {b.plugin}]"
        if b.description or origin:
            print(f"  {'':<12} {b.description}{origin}")
    best = next((b.name for b in backends if b.available), None)
    print(f"auto: {best or 'no backend is available'}")
    if failures:
        print("failed plugins:")
        for f in failures:
            print(f"  {f.name}: {f.error}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .checkpoints.hub import resolve_source
    from .convert import convert

    if args.to == "gguf":
        from .gguf_export import export_gguf

        print(f"wrote {export_gguf(resolve_source(args.source), args.output, args.type)}")
        return 0
    out = convert(
        resolve_source(args.source),
        args.output,
        lm_head=args.lm_head,
        weight_layout=args.layout,
        n_threads=args.threads,
    )
    print(f"wrote {out}")
    return 0


COMMANDS = {
    "run": cmd_run,
    "chat": cmd_chat,
    "info": cmd_info,
    "plugins": cmd_plugins,
    "convert": cmd_convert,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bitnet`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BitnetError as exc:
        sys.stdout.flush()
        print(f"bitnet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`bitnet run ... | head`); silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
