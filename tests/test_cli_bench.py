"""``bitnet bench``: a llama-bench-like table and JSON of prompt and generation speed."""

from __future__ import annotations

import json

from cli_helpers import assert_one_error_line, bitnet


def test_bench_measures_each_test_at_each_thread_count(tmp_path):
    out = tmp_path / "bench.json"
    r = bitnet(
        "bench", "-p", "8,16", "-n", "4", "--threads", "1,2", "--repetitions", "2",
        "--json", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| default")]
    assert [row.split("|")[5:7] for row in rows] == [
        [" 1 ", " pp8 "], [" 1 ", " pp16 "], [" 1 ", " tg4 "],
        [" 2 ", " pp8 "], [" 2 ", " pp16 "], [" 2 ", " tg4 "],
    ]  # fmt: skip
    results = json.loads(out.read_text())
    assert [(x["threads"], x["test"]) for x in results] == [
        (1, "pp8"), (1, "pp16"), (1, "tg4"), (2, "pp8"), (2, "pp16"), (2, "tg4"),
    ]  # fmt: skip
    for x in results:
        assert len(x["samples_ms"]) == len(x["samples_ts"]) == 2
        tokens = x["n_prompt"] + x["n_gen"]
        assert x["samples_ts"] == [tokens * 1e3 / ms for ms in x["samples_ms"]]
        assert x["avg_ts"] > 0 and x["backend"] == "cpu" and x["isa"]


def test_bench_rejects_a_prompt_longer_than_the_context():
    r = bitnet("bench", "-p", "64", "-n", "0", "--ctx", "32", "--repetitions", "1")
    assert_one_error_line(r, "context")


def test_bench_needs_something_to_measure():
    assert_one_error_line(bitnet("bench", "-p", "0", "-n", "0"), "nothing to measure")


def test_bench_checks_the_json_destination_before_measuring(tmp_path):
    r = bitnet("bench", "--json", str(tmp_path / "missing" / "bench.json"))
    assert_one_error_line(r, "--json", "is not a directory")
    assert "| default" not in r.stdout
