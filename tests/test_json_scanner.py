"""The incremental JSON scanner: nesting, strings with escapes, and the key of each value."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from bitnet_backend.constraints.json_scanner import JsonScanner

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _keys_of_string_values(text: str) -> list[tuple[int, str | None]]:
    """(depth, key) of every string value in ``text``, as the scanner reports them."""
    scan = JsonScanner()
    found = []
    for ch in text:
        key = scan.value_key
        if scan.feed(ch) == "string_start" and not scan.string_is_key:
            found.append((scan.depth, key))
    return found


def test_escaped_quotes_and_brackets_inside_strings_do_not_move_the_scanner() -> None:
    text = json.dumps({"a": 'say "}" and [', "b": {"c": "\\"}, "d": ["x"]})
    assert _keys_of_string_values(text) == [(1, "a"), (2, "c"), (2, None)]


def test_a_kept_string_is_decoded() -> None:
    scan = JsonScanner()
    for ch in '{"name": "caf\\u00e9 \\"x\\""':
        if scan.feed(ch) == "string_start" and scan.value_key == "name":
            scan.keep_string()
    assert scan.last_string() == 'café "x"'


@given(JSON_VALUES)
def test_the_scanner_ends_every_document_where_it_started(value: object) -> None:
    scan = JsonScanner()
    for ch in json.dumps(value):
        scan.feed(ch)
    assert scan.depth == 0 and not scan.in_string
