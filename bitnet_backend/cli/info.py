"""``bitnet info`` (describe a model) and ``bitnet plugins`` (list the backends)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .options import add_command, load_model, model_options


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = add_command(
        sub,
        "info",
        "describe a model",
        "Load a model and print its architecture, size, weight format, backend and ISA.",
        (model_options(),),
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="MODEL",
        help="checkpoint directory or hub id, same as --model (default: the demo model)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=info)

    p = add_command(
        sub,
        "plugins",
        "list backend plugins and their availability",
        "List the installed backends, highest priority first, and plugins that failed.",
    )
    p.set_defaults(handler=list_plugins)


def info(args: argparse.Namespace) -> int:
    model, _ = load_model(args, args.source if args.source is not None else args.model)
    with model:
        description = model.info
    if args.json:
        print(json.dumps(description, indent=2, default=str))
        return 0
    engine = description.pop("engine", {})
    width = max(len(k) for k in description)
    for key, value in description.items():
        print(f"{key:<{width}}  {value}")
    for key, value in engine.items():
        if key not in description:
            print(f"{'engine.' + key:<{width}}  {value}")
    return 0


def list_plugins(args: argparse.Namespace) -> int:
    from .. import plugins

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
