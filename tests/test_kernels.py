"""Every compiled kernel family against the scalar reference, on random and ragged shapes."""

from __future__ import annotations

import numpy as np
import pytest

_engine = pytest.importorskip("bitnet_backend._engine")
hooks = _engine.testing

ISAS = _engine.available_isas()
FAST_ISAS = [isa for isa in ISAS if isa != "ref"]

# (rows, cols, tokens): multiples of the 16x16 tile, ragged, tiny, and 2B-4T-like widths.
SHAPES = [
    (16, 16, 1),
    (37, 70, 3),
    (100, 2560, 1),
    (33, 200, 13),
    (640, 2560, 9),
    (1, 5, 2),
    (48, 6912 // 16, 17),
    (250, 96, 8),
]
# Prompt-sized steps: ragged rows and columns, and a ragged last tile of tokens.
PROMPT_SHAPES = [(83, 530, 5), (130, 2600, 64), (47, 6912, 131)]


def test_reference_kernel_is_listed_and_default_is_the_best_available() -> None:
    assert "ref" in ISAS
    assert _engine.best_isa() in ISAS


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize(("rows", "cols", "tokens"), SHAPES)
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("base3", [False, True], ids=["i2_r16", "i1_r16"])
def test_ternary_gemm_is_exact(
    isa: str, rows: int, cols: int, tokens: int, threads: int, base3: bool
) -> None:
    rng = np.random.default_rng(rows * 1000 + cols + tokens)
    w = rng.integers(-1, 2, (rows, cols)).astype(np.int8)
    x = rng.integers(-128, 128, (tokens, cols)).astype(np.int8)
    expected = x.astype(np.int64) @ w.T.astype(np.int64)
    out = hooks.kernel_gemm(isa, w, x, threads, base3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("tokens", range(2, 17))
@pytest.mark.parametrize("base3", [False, True], ids=["i2_r16", "i1_r16"])
def test_ternary_gemm_is_exact_for_batched_decode_steps(isa: str, tokens: int, base3: bool) -> None:
    # 2..16 rows: the decode tokens of several sequences in one step, on a ragged shape.
    rng = np.random.default_rng(tokens)
    w = rng.integers(-1, 2, (83, 530)).astype(np.int8)
    x = rng.integers(-128, 128, (tokens, 530)).astype(np.int8)
    expected = x.astype(np.int64) @ w.T.astype(np.int64)
    np.testing.assert_array_equal(hooks.kernel_gemm(isa, w, x, 2, base3), expected)


@pytest.mark.parametrize("isa", FAST_ISAS)
@pytest.mark.parametrize(("rows", "cols", "tokens"), PROMPT_SHAPES)
@pytest.mark.parametrize("base3", [False, True], ids=["i2_r16", "i1_r16"])
def test_ternary_gemm_is_exact_for_prompt_steps(
    isa: str, rows: int, cols: int, tokens: int, base3: bool
) -> None:
    # Prompt-sized steps take the kernels' many-token path (weights unpacked once per step).
    rng = np.random.default_rng(rows + cols + tokens)
    w = rng.integers(-1, 2, (rows, cols)).astype(np.int8)
    x = rng.integers(-128, 128, (tokens, cols)).astype(np.int8)
    expected = x.astype(np.int64) @ w.T.astype(np.int64)
    np.testing.assert_array_equal(hooks.kernel_gemm(isa, w, x, 2, base3), expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("base3", [False, True], ids=["i2_r16", "i1_r16"])
@pytest.mark.parametrize("tokens", [2, 7])
def test_ternary_gemm_extreme_activations_do_not_overflow(
    isa: str, base3: bool, tokens: int
) -> None:
    cols = 6912
    w = np.ones((32, cols), dtype=np.int8)
    w[16:] = -1
    for value in (-128, 127):
        x = np.full((tokens, cols), value, dtype=np.int8)
        out = hooks.kernel_gemm(isa, w, x, 1, base3)
        assert (out[:, :16] == value * cols).all()
        assert (out[:, 16:] == -value * cols).all()


def _reference_quantize(x: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    # transformers: 127 / t is evaluated as reciprocal(t) * 127, in float32.
    amax = np.float32(max(np.abs(x).max(initial=0.0), 1e-5))
    s = np.float32(np.float32(1.0) / amax) * np.float32(127.0)
    q = np.clip(np.rint(x * s), -128, 127).astype(np.int8)
    return q, s, int(q.astype(np.int64).sum())


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("n", [1, 5, 16, 17, 100, 2560, 6913])
def test_activation_quantization_matches_transformers_rounding(isa: str, n: int) -> None:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(np.float32)
    # Exact .5 ties must round half to even.
    x[: min(n, 4)] = np.float32(0.0)
    q, s, total = hooks.kernel_quantize(isa, x)
    q_ref, s_ref, total_ref = _reference_quantize(x)
    np.testing.assert_array_equal(q, q_ref)
    assert np.float32(s) == s_ref
    assert total == total_ref


def test_activation_quantization_of_zeros_uses_the_epsilon_floor() -> None:
    q, s, total = hooks.kernel_quantize("ref", np.zeros(8, dtype=np.float32))
    assert (q == 0).all() and total == 0
    assert np.float32(s) == np.float32(np.float32(1.0) / np.float32(1e-5)) * np.float32(127.0)


@pytest.mark.parametrize("kind", ["int8", "q6", "q4", "f32"])
@pytest.mark.parametrize(("vocab", "hidden"), [(512, 64), (100, 72), (37, 10), (1000, 2560)])
def test_head_kernels_agree_with_reference_and_bound_the_error(
    kind: str, vocab: int, hidden: int
) -> None:
    rng = np.random.default_rng(vocab + hidden)
    table = rng.standard_normal((vocab, hidden)).astype(np.float32)
    h = rng.standard_normal(hidden).astype(np.float32)
    head = _engine.HeadKind.__members__[kind]
    ref = hooks.kernel_head_logits("ref", head, table, h)
    for isa in ISAS:
        for threads in (1, 2, 3):
            out = hooks.kernel_head_logits(isa, head, table, h, threads)
            if kind == "f32":
                np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
            else:
                np.testing.assert_array_equal(out, ref)
    exact = table.astype(np.float64) @ h.astype(np.float64)
    rel = np.sqrt(((ref - exact) ** 2).mean() / (exact**2).mean())
    # Measured: int8 per row ~0.4-0.9 %, 6-bit with a sub-scale per 16 columns ~1.5-2.0 %,
    # 4-bit per row ~7-15 % relative RMS on Gaussian rows.
    bound = {"f32": 1e-6, "int8": 0.012, "q6": 0.025, "q4": 0.2}[kind]
    assert rel < bound


def test_forcing_an_unknown_isa_is_an_error() -> None:
    with pytest.raises(ValueError):
        hooks.kernel_quantize("sse9", np.zeros(4, dtype=np.float32))
