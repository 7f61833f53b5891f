"""Every option of ``bitnet`` and ``python -m bitnet_backend.testing`` explains itself."""

from __future__ import annotations

import argparse

import pytest
from cli_helpers import bitnet

from bitnet_backend import testing
from bitnet_backend.cli import build_parser


def _parsers() -> list[argparse.ArgumentParser]:
    top = build_parser()
    subs = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    return [top, *subs[0].choices.values(), testing.build_parser()]


@pytest.mark.parametrize("parser", _parsers(), ids=lambda p: p.prog)
def test_every_option_has_help_that_names_its_default(parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        if isinstance(action, argparse._SubParsersAction):
            assert all(c.help for c in action._choices_actions)
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 10, f"{parser.prog} {name}: no help"
        takes_value = action.option_strings and action.nargs != 0
        if takes_value:
            assert "default" in action.help, f"{parser.prog} {name}: default not stated"


def test_the_help_of_each_command_prints():
    for command in ("run", "chat", "bench", "info", "convert", "plugins"):
        r = bitnet(command, "--help")
        assert r.returncode == 0, r.stderr
        assert f"usage: bitnet {command}" in r.stdout
