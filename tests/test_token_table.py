"""TokenBytes: every id's bytes in one buffer, read like the list of bytes it replaces."""

from __future__ import annotations

import numpy as np
import pytest

from bitnet_backend.token_table import TokenBytes

PIECES = [b"", b"a", b" the", b"\xe4\xbd", b"\xa0", b"", b"longest piece"]


def test_it_reads_like_the_list_of_its_pieces():
    table = TokenBytes(PIECES)
    assert len(table) == len(PIECES)
    assert list(table) == PIECES
    assert [table[i] for i in range(len(PIECES))] == PIECES
    assert table[-1] == PIECES[-1] and table[-len(PIECES)] == PIECES[0]
    assert table[np.int64(2)] == b" the"
    assert table[1:4] == PIECES[1:4] and table[::-2] == PIECES[::-2]
    assert table.index(b"\xa0") == 4 and b"a" in table
    assert table.longest() == len(b"longest piece")


@pytest.mark.parametrize("bad", [len(PIECES), -len(PIECES) - 1])
def test_an_id_outside_the_table_raises_index_error(bad):
    with pytest.raises(IndexError):
        TokenBytes(PIECES)[bad]


def test_an_empty_table():
    table = TokenBytes([])
    assert len(table) == 0 and list(table) == [] and table.longest() == 0
