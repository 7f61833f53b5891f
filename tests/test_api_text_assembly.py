"""Incremental text assembly: whole UTF-8 characters only, stop strings withheld and cut."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bitnet_backend.errors import InvalidParameterError
from bitnet_backend.generation import (
    StopStringFilter,
    TextAssembler,
    Utf8Decoder,
    normalize_stop,
)


def byte_tokens(text: str) -> tuple[list[bytes], list[int]]:
    """A vocabulary of single bytes and the ids spelling ``text`` one byte per token."""
    table = [bytes([b]) for b in range(256)]
    return table, list(text.encode("utf-8"))


def test_multibyte_character_split_over_tokens_is_emitted_whole():
    table, ids = byte_tokens("a你🤖b")
    dec = Utf8Decoder(table)
    pieces = [dec.push(i) for i in ids]
    assert [p for p in pieces if p] == ["a", "你", "🤖", "b"]
    assert dec.flush() == ""


def test_incomplete_character_at_the_end_becomes_a_replacement_character():
    table, ids = byte_tokens("x🤖")
    dec = Utf8Decoder(table)
    out = "".join(dec.push(i) for i in ids[:-1])
    assert out == "x"
    assert dec.flush() == "\ufffd"


def test_stop_string_split_across_pushes_is_not_emitted():
    f = StopStringFilter(["###"])
    out = [f.push(p) for p in ["Hello #", "#", "# world"]]
    assert "".join(out) == "Hello "
    assert f.stopped
    assert f.push("more") == ""


def test_text_that_only_looks_like_a_stop_prefix_is_released():
    f = StopStringFilter(["STOP"])
    assert f.push("ST") == ""
    assert f.push("ART") == "START"
    assert f.push("S") == ""
    assert f.flush() == "S"
    assert not f.stopped


def test_the_stop_string_completed_first_wins():
    f = StopStringFilter(["world", "lo w"])
    assert f.push("hello world") == "hel"
    assert f.stopped
    g = StopStringFilter(["a", " aa"])
    assert g.push(" aaa") == " "  # "a" is complete before " aa" is


def test_the_cut_does_not_depend_on_how_text_is_split():
    whole = StopStringFilter(["a", " aa"]).push(" aa")
    split = StopStringFilter(["a", " aa"])
    assert split.push(" a") + split.push("a") == whole == " "


def cut_at_first_completed_stop(text: str, stops: list[str]) -> str:
    """The text a generation emitting ``text`` one character at a time would show."""
    for end in range(1, len(text) + 1):
        starts = [end - len(s) for s in stops if text[:end].endswith(s)]
        if starts:
            return text[: min(starts)]
    return text


def test_assembler_stops_inside_a_multibyte_stop_string():
    table, ids = byte_tokens("ok 你好 there")
    asm = TextAssembler(table, ["你好"])
    out = []
    for i in ids:
        out.append(asm.push(i))
        if asm.stopped:
            break
    assert "".join(out) + asm.flush() == "ok "


@pytest.mark.parametrize(
    ("stop", "expected"),
    [(None, ()), ("x", ("x",)), (["a", "b", "a"], ("a", "b")), (("q",), ("q",))],
)
def test_normalize_stop_accepts_none_a_string_or_strings(stop, expected):
    assert normalize_stop(stop) == expected


@pytest.mark.parametrize("stop", ["", [""], [1], 5, ["ok", None]])
def test_normalize_stop_rejects_empty_or_non_strings(stop):
    with pytest.raises(InvalidParameterError):
        normalize_stop(stop)


@given(
    text=st.text(alphabet=st.sampled_from("ab你🤖 \n"), max_size=30),
    stops=st.lists(
        st.text(alphabet=st.sampled_from("ab你🤖 "), min_size=1, max_size=4), max_size=3
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12),
)
def test_streamed_pieces_equal_the_text_cut_at_the_first_stop(text, stops, cuts):
    data = text.encode("utf-8")
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    # every chunk of bytes becomes one "token"
    table = [data[a:b] for a, b in itertools.pairwise(bounds)]
    asm = TextAssembler(table, normalize_stop(stops))
    pieces = []
    for tid in range(len(table)):
        pieces.append(asm.push(tid))
        if asm.stopped:
            break
    pieces.append(asm.flush())
    assert "".join(pieces) == cut_at_first_completed_stop(text, stops)
    for p in pieces:  # only whole characters, and never a stop string
        p.encode("utf-8")
        assert not any(s in p for s in stops)
