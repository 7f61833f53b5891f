"""sampling.py: each sampling option, the seeded RNG, masks and parameter validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bitnet_backend.errors import InvalidParameterError
from bitnet_backend.sampling import (
    SamplingParams,
    SplitMix64,
    mask_allows,
    resolve_seed,
    sample,
)

# Wide, no filtering: the draw follows softmax(logits / temperature) over the whole vocabulary.
PLAIN = {"top_k": 0, "top_p": 1.0, "min_p": 0.0}


def random_logits(seed: int, vocab: int = 100) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(vocab) * 2).astype(np.float32)


def draws(logits: np.ndarray, params: SamplingParams, n: int, seed: int = 0, **kw) -> list[int]:
    rng = SplitMix64(seed)
    return [sample(logits, params, rng, **kw) for _ in range(n)]


def mask_of(allowed: list[int], vocab: int) -> np.ndarray:
    words = np.zeros((vocab + 31) // 32, dtype=np.uint32)
    for t in allowed:
        words[t // 32] |= np.uint32(1 << (t % 32))
    return words


def test_splitmix64_matches_the_published_reference_sequence():
    # Vigna's splitmix64.c: the C++ engine and any other backend draw the same numbers.
    zero = SplitMix64(0)
    assert [zero.next_u64(), zero.next_u64()] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]
    r = SplitMix64(1234567)
    assert [r.next_u64() for _ in range(3)] == [
        6457827717110365317,
        3203168211198807973,
        9817491932198370423,
    ]
    u = SplitMix64(7)
    assert all(0.0 <= u.next_double() < 1.0 for _ in range(1000))


def test_temperature_zero_is_greedy_with_the_lowest_index_among_ties():
    logits = np.array([0.5, 2.0, -1.0, 2.0], dtype=np.float32)
    greedy = SamplingParams(temperature=0.0)
    assert draws(logits, greedy, 20, seed=3) == [1] * 20
    for seed in range(5):
        x = random_logits(seed)
        assert sample(x, greedy, SplitMix64(seed)) == int(np.argmax(x))


def test_greedy_does_not_consume_random_numbers():
    rng = SplitMix64(11)
    sample(random_logits(0), SamplingParams(temperature=0.0), rng)
    assert rng.next_u64() == SplitMix64(11).next_u64()


@pytest.mark.parametrize(
    "option",
    [{"top_k": 1}, {"top_p": 1e-9}, {"min_p": 1.0}],
    ids=["top_k=1", "tiny top_p", "min_p=1"],
)
def test_filters_that_keep_one_candidate_equal_greedy(option):
    params = SamplingParams(**{**PLAIN, "temperature": 5.0, **option})
    for seed in range(20):
        x = random_logits(seed)
        assert draws(x, params, 10, seed=seed) == [int(np.argmax(x))] * 10


def test_top_k_draws_only_among_the_k_best():
    x = random_logits(1)
    best3 = set(np.argsort(-x)[:3].tolist())
    got = draws(x, SamplingParams(**{**PLAIN, "temperature": 50.0, "top_k": 3}), 500)
    assert set(got) == best3


def test_top_p_keeps_the_shortest_prefix_reaching_the_mass():
    # Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.75 needs (and keeps) the first two.
    logits = np.log(np.array([0.05, 0.5, 0.15, 0.3])).astype(np.float32)
    got = draws(logits, SamplingParams(**{**PLAIN, "temperature": 1.0, "top_p": 0.75}), 500)
    assert set(got) == {1, 3}


def test_min_p_drops_tokens_below_the_fraction_of_the_best():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05])).astype(np.float32)
    # p >= 0.25 * 0.5 keeps 0.5, 0.3 and 0.15, drops 0.05.
    got = draws(logits, SamplingParams(**{**PLAIN, "temperature": 1.0, "min_p": 0.25}), 800)
    assert set(got) == {0, 1, 2}


def test_repeat_penalty_lowers_tokens_in_the_recent_history():
    greedy = SamplingParams(temperature=0.0, repeat_penalty=1.5, repeat_last_n=4)
    # Positive logits are divided: 3.0 / 1.5 = 2.0 < 2.5.
    pos = np.array([3.0, 2.5, 0.0], dtype=np.float32)
    assert sample(pos, greedy, SplitMix64(0), history=[0]) == 1
    # Negative logits are multiplied: -1.0 * 1.5 = -1.5 < -1.2.
    neg = np.array([-1.0, -1.2, -9.0], dtype=np.float32)
    assert sample(neg, greedy, SplitMix64(0), history=[0]) == 1
    # Outside the last repeat_last_n tokens there is no penalty.
    assert sample(pos, greedy, SplitMix64(0), history=[0, 2, 2, 2, 2]) == 0
    # A token repeated many times is penalized once, not once per occurrence.
    once = np.array([3.0, 1.9, 0.0], dtype=np.float32)
    assert sample(once, greedy, SplitMix64(0), history=[0, 0, 0]) == 0
    # Penalty 1 leaves the logits alone.
    plain = SamplingParams(temperature=0.0, repeat_penalty=1.0)
    assert sample(pos, plain, SplitMix64(0), history=[0]) == 0


def test_repeat_penalty_shifts_the_sampled_distribution():
    logits = np.zeros(4, dtype=np.float32) + 1.0
    params = SamplingParams(**{**PLAIN, "temperature": 1.0, "repeat_penalty": 4.0})
    got = draws(logits, params, 2000, seed=5, history=[2])
    # exp(1/4) / (3 e + exp(1/4)) is about 0.13 instead of 0.25.
    assert 0.09 < got.count(2) / len(got) < 0.17


def test_mask_is_respected_under_sampling_and_greedy():
    vocab = 70  # spans three uint32 words
    x = random_logits(2, vocab)
    allowed = [3, 31, 32, 64, 69]
    mask = mask_of(allowed, vocab)
    hot = SamplingParams(**{**PLAIN, "temperature": 100.0})
    got = draws(x, hot, 2000, seed=1, mask=mask)
    assert set(got) == set(allowed)
    best_allowed = max(allowed, key=lambda t: x[t])
    assert sample(x, SamplingParams(temperature=0.0), SplitMix64(0), mask=mask) == best_allowed


def test_a_mask_allowing_nothing_or_too_short_is_rejected():
    x = random_logits(0, 40)
    with pytest.raises(InvalidParameterError, match="allows no token"):
        sample(x, SamplingParams(), SplitMix64(0), mask=np.zeros(2, dtype=np.uint32))
    with pytest.raises(InvalidParameterError, match="covers 32 tokens"):
        sample(x, SamplingParams(), SplitMix64(0), mask=np.ones(1, dtype=np.uint32))
    assert mask_allows(mask_of([0, 33], 40), 40).nonzero()[0].tolist() == [0, 33]


def test_the_same_seed_gives_the_same_draws():
    x = random_logits(4)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    assert draws(x, params, 200, seed=42) == draws(x, params, 200, seed=42)


def test_different_seeds_give_different_draws():
    x = random_logits(4)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    a, b = draws(x, params, 200, seed=1), draws(x, params, 200, seed=2)
    assert sum(i != j for i, j in zip(a, b, strict=True)) > 100


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_draws_follow_the_tempered_softmax(temperature):
    logits = np.array([1.0, 0.0, 2.0, -1.0, 0.5, 1.5], dtype=np.float32)
    p = np.exp(logits.astype(np.float64) / temperature)
    p /= p.sum()
    n = 20000
    got = draws(logits, SamplingParams(**{**PLAIN, "temperature": temperature}), n, seed=9)
    freq = np.bincount(got, minlength=len(logits)) / n
    # Six standard deviations per token: a correct sampler fails this about once in 1e8 runs,
    # a wrong temperature or an off-by-one in the cumulative search fails it every time.
    bound = 6 * np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= bound), (freq, p)


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"temperature": math.nan},
        {"temperature": math.inf},
        {"temperature": "1"},
        {"top_k": -1},
        {"top_k": 2.5},
        {"top_k": True},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_p": math.nan},
        {"min_p": -0.01},
        {"min_p": 1.01},
        {"repeat_penalty": 0.0},
        {"repeat_penalty": -1.0},
        {"repeat_penalty": math.inf},
        {"repeat_last_n": -1},
        {"repeat_last_n": 1.5},
    ],
)
def test_invalid_parameters_raise_invalid_parameter_error(bad):
    with pytest.raises(InvalidParameterError):
        SamplingParams(**bad)


def test_seeds_are_validated_and_masked_to_64_bits():
    assert resolve_seed(5) == 5
    assert resolve_seed(-1) == (1 << 64) - 1
    assert resolve_seed(np.int64(3)) == 3
    assert 0 <= resolve_seed(None) < 1 << 64
    for bad in ("7", 1.0, True):
        with pytest.raises(InvalidParameterError):
            resolve_seed(bad)
