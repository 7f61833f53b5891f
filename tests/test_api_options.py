"""Generation options are declared once (options.py); everything else must agree with it."""

from __future__ import annotations

import inspect

import pytest

from bitnet_backend import GenerationConfig, InvalidParameterError
from bitnet_backend.cli.options import generation_options, sampling_settings
from bitnet_backend.model import Model
from bitnet_backend.options import OPTION_NAMES, OPTION_SPECS, GenerationOptions
from bitnet_backend.sampling import SamplingParams


@pytest.mark.parametrize("method", ["generate", "stream"])
def test_public_signatures_name_exactly_the_declared_options(method):
    params = inspect.signature(getattr(Model, method)).parameters
    assert set(params) - {"self", "prompt"} == OPTION_NAMES


@pytest.mark.parametrize("method", ["generate", "stream"])
def test_public_signatures_default_every_option_to_none(method):
    params = inspect.signature(getattr(Model, method)).parameters
    assert all(params[name].default is None for name in OPTION_NAMES)


def test_unknown_keywords_are_named():
    with pytest.raises(TypeError, match="no_such_option, top_q"):
        GenerationOptions().updated({"top_q": 0.5, "no_such_option": 1})


def test_updated_keeps_the_defaults_a_call_leaves_at_none():
    base = GenerationConfig(temperature=0.3)
    opts = base.updated({"temperature": None, "top_k": 7, "stop": "###"})
    assert (opts.temperature, opts.top_k, opts.stop) == (0.3, 7, ("###",))


@pytest.mark.parametrize(
    "bad",
    [{"top_p": 0.0}, {"min_p": 2.0}, {"repeat_penalty": 0}, {"repeat_last_n": -1}, {"seed": "x"}],
)
def test_updated_validates_what_a_call_sets(bad):
    with pytest.raises(InvalidParameterError, match=next(iter(bad))):
        GenerationConfig().updated(bad)


def test_a_schema_is_per_call_only():
    with pytest.raises(InvalidParameterError, match="json_schema"):
        GenerationConfig(json_schema={"type": "object"})
    schema = {"type": "object"}
    assert GenerationConfig().updated({"json_schema": schema}).json_schema is schema


def test_sampling_params_share_the_declared_defaults_and_checks():
    defaults = GenerationConfig()
    assert SamplingParams() == SamplingParams.of(defaults)
    with pytest.raises(InvalidParameterError, match="top_k"):
        SamplingParams(top_k=-1)


def test_every_declared_hugging_face_key_is_read():
    values = {"max_tokens": 7, "temperature": 0.5, "top_k": 3, "top_p": 0.5, "min_p": 0.2}
    values |= {"repeat_penalty": 1.2, "repeat_last_n": 9}
    mapped = {name: spec.hf_key for name, spec in OPTION_SPECS.items() if spec.hf_key}
    assert mapped, "the declaration maps no generation_config.json key"
    g = GenerationConfig.from_hf({mapped[name]: values[name] for name in mapped})
    assert all(getattr(g, name) == values[name] for name in mapped)


def test_every_declared_flag_reaches_the_options():
    parser = generation_options()
    argv, expected = [], {}
    samples = {"float": ("0.5", 0.5), "int32": ("3", 3), "int": ("11", 11), "str": ("###", "###")}
    for name, spec in OPTION_SPECS.items():
        if spec.cli is None:
            continue
        text, value = samples[spec.cli.type]
        argv += ["--" + name.replace("_", "-"), text]
        expected[name] = [value] if spec.cli.repeated else value
    assert sampling_settings(parser.parse_args(argv)) == expected
    GenerationConfig().updated(expected)  # and every flag's value is a valid option


def test_options_without_a_flag_are_per_call_only():
    no_flag = {n for n, s in OPTION_SPECS.items() if s.cli is None}
    assert no_flag == {"json_schema", "logprobs"}
    assert all(OPTION_SPECS[n].per_call for n in no_flag)
