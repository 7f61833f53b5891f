"""GenerationConfig: defaults, validation, and what a checkpoint's generation_config.json sets."""

from __future__ import annotations

import pytest

from bitnet_backend import GenerationConfig, InvalidParameterError


def test_defaults_are_the_documented_ones():
    g = GenerationConfig()
    assert (g.max_tokens, g.temperature, g.top_k, g.top_p, g.min_p) == (256, 0.8, 40, 0.95, 0.05)
    assert (g.repeat_penalty, g.seed, g.stop) == (1.0, None, ())


def test_hugging_face_keys_override_only_what_they_set():
    g = GenerationConfig.from_hf({"temperature": 0.6, "top_p": 0.9, "repetition_penalty": 1.1})
    assert (g.temperature, g.top_p, g.repeat_penalty) == (0.6, 0.9, 1.1)
    assert (g.top_k, g.min_p, g.max_tokens) == (40, 0.05, 256)


def test_do_sample_false_means_greedy():
    assert GenerationConfig.from_hf({"do_sample": False, "temperature": 0.7}).temperature == 0.0


def test_max_new_tokens_becomes_max_tokens():
    assert GenerationConfig.from_hf({"max_new_tokens": 32}).max_tokens == 32


def test_unusable_checkpoint_defaults_fall_back_to_ours():
    assert GenerationConfig.from_hf({"top_p": 0.0}) == GenerationConfig()


@pytest.mark.parametrize(
    "bad",
    [{"max_tokens": 0}, {"temperature": -0.1}, {"top_k": -2}, {"stop": ("",)}, {"seed": 1.5}],
)
def test_invalid_values_are_refused(bad):
    with pytest.raises(InvalidParameterError):
        GenerationConfig(**bad)


def test_stop_is_normalised_to_a_tuple():
    assert GenerationConfig(stop="###").stop == ("###",)  # type: ignore[arg-type]
