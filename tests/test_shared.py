"""The process-wide model cache and closed schemas that the framework integrations build on."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

import bitnet_backend as bb
from bitnet_backend.schemas import closed
from bitnet_backend.testing import write_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("shared"), shape="tiny")


def test_same_settings_share_one_model(tiny: Path) -> None:
    first = bb.load_shared(str(tiny), n_threads=1)
    # Another spelling of the same directory is the same checkpoint.
    again = bb.load_shared(str(tiny / "." / ".." / tiny.name), n_threads=1)
    assert again is first
    assert bb.load_shared(str(tiny), n_threads=2) is not first
    assert bb.cache_key(str(tiny), n_threads=1) == bb.cache_key(str(tiny) + "/", n_threads=1)


def test_failed_loads_are_not_cached(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(bb.CheckpointError):
        bb.load_shared(str(missing))
    write_checkpoint(missing, shape="tiny")
    assert bb.load_shared(str(missing)).vocab_size > 0


def test_a_closed_model_is_no_longer_kept_alive_by_the_cache(tiny: Path) -> None:
    model = bb.load_shared(str(tiny), n_threads=1, n_ctx=32)
    ref = weakref.ref(model)
    model.close()
    del model
    # Any later call (here of other settings) drops the closed entry.
    other = bb.load_shared(str(tiny), n_threads=1, n_ctx=48)
    gc.collect()
    assert ref() is None
    # Open models stay shared while nobody holds them (a per-call override reuses them).
    other_ref = weakref.ref(other)
    del other
    gc.collect()
    assert other_ref() is not None
    assert bb.load_shared(str(tiny), n_threads=1, n_ctx=48) is other_ref()


def test_closed_schemas_forbid_undeclared_keys() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "c": {"type": "object", "properties": {}, "additionalProperties": True},
        },
        "$defs": {"D": {"type": "object", "properties": {"e": {"type": "integer"}}}},
    }
    out = closed(schema)
    assert out["additionalProperties"] is False
    assert out["properties"]["a"]["additionalProperties"] is False
    assert out["properties"]["c"]["additionalProperties"] is True  # said explicitly: kept
    assert out["$defs"]["D"]["additionalProperties"] is False
    assert "additionalProperties" not in schema  # the caller's schema is not changed
