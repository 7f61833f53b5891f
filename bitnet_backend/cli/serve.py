"""``bitnet serve``: the OpenAI-compatible server (its options live with the server)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    from ..server.command import add_serve_parser, cmd_serve

    add_serve_parser(sub).set_defaults(handler=cmd_serve)
