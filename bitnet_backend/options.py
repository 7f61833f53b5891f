"""Generation options, declared once.

``GenerationOptions`` names every option a generation call accepts, with its type, its
default, the check that validates it, the Hugging Face generation_config.json key it is read
from and the help of its command-line flag. The rest derives from it: the keyword names the
public methods accept (``OPTION_NAMES``; the signatures are checked against it by a test),
validation, ``GenerationConfig`` and its ``from_hf``, and the ``bitnet run``/``chat`` flags.
Adding an option means declaring it here (and implementing its effect).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from . import validation
from .errors import InvalidParameterError
from .generation import normalize_stop


@dataclass(frozen=True)
class CliFlag:
    """How an option appears on the command line: ``--name-with-dashes METAVAR``."""

    metavar: str
    help: str
    # The value's type: "float", "int32" (an integer the engine takes), "int" or "str".
    type: str = "float"
    repeated: bool = False  # the flag may be given several times, collected into a list
    # False when the default is not the model's (the help then states it itself).
    model_default: bool = True


@dataclass(frozen=True)
class OptionSpec:
    """What the declaration knows about one option besides its name, type and default."""

    check: Callable[[Any], Any]  # returns the value to use, raises InvalidParameterError
    doc: str
    hf_key: str | None = None  # the generation_config.json key it is read from
    cli: CliFlag | None = None
    per_call: bool = False  # no model-wide default: only a call may set it


_SPEC = "option"  # the metadata key of a field's OptionSpec


def _json_schema_as_given(value: Any) -> Any:
    return value  # compiled (and checked) against the model's tokenizer by the call


@dataclass(frozen=True)
class GenerationOptions:
    """Every generation option and its default; construction validates the values."""

    max_tokens: int = field(
        default=256,
        metadata={
            _SPEC: OptionSpec(
                validation.check_max_tokens,
                "Tokens to generate at most; -1: until the context window is full.",
                hf_key="max_new_tokens",
                cli=CliFlag(
                    "N", "tokens to generate, -1 for no limit but the context window", "int32"
                ),
            )
        },
    )
    temperature: float = field(
        default=0.8,
        metadata={
            _SPEC: OptionSpec(
                validation.check_temperature,
                "Softmax temperature, >= 0; 0 picks the likeliest token (greedy).",
                hf_key="temperature",
                cli=CliFlag("T", "sampling temperature, 0 for greedy"),
            )
        },
    )
    top_k: int = field(
        default=40,
        metadata={
            _SPEC: OptionSpec(
                validation.check_top_k,
                "Sample among the k likeliest tokens; 0 disables the cut.",
                hf_key="top_k",
                cli=CliFlag("K", "sample among the K likeliest", "int32"),
            )
        },
    )
    top_p: float = field(
        default=0.95,
        metadata={
            _SPEC: OptionSpec(
                validation.check_top_p,
                "Nucleus sampling: the smallest set of tokens whose mass reaches top_p, in (0, 1].",
                hf_key="top_p",
                cli=CliFlag("P", "nucleus sampling mass"),
            )
        },
    )
    min_p: float = field(
        default=0.05,
        metadata={
            _SPEC: OptionSpec(
                validation.check_min_p,
                "Drop tokens below min_p times the likeliest one's probability, in [0, 1].",
                hf_key="min_p",
                cli=CliFlag("P", "drop tokens below P times the likeliest one's probability"),
            )
        },
    )
    repeat_penalty: float = field(
        default=1.0,
        metadata={
            _SPEC: OptionSpec(
                validation.check_repeat_penalty,
                "Penalty (> 0) on the logits of recently used tokens; 1 for none.",
                hf_key="repetition_penalty",
                cli=CliFlag("R", "penalty for recently used tokens, 1 for none"),
            )
        },
    )
    repeat_last_n: int = field(
        default=64,
        metadata={
            _SPEC: OptionSpec(
                validation.check_repeat_last_n,
                "How many of the last tokens repeat_penalty looks at; 0 for none.",
                cli=CliFlag("N", "recent tokens the repeat penalty applies to", "int32"),
            )
        },
    )
    seed: int | None = field(
        default=None,
        metadata={
            _SPEC: OptionSpec(
                validation.check_seed,
                "Random seed for reproducible sampling; None draws a fresh one per call.",
                cli=CliFlag(
                    "S",
                    "random seed for reproducible sampling (default: a fresh seed per reply)",
                    "int",
                    model_default=False,
                ),
            )
        },
    )
    stop: tuple[str, ...] = field(
        default=(),
        metadata={
            _SPEC: OptionSpec(
                normalize_stop,
                "Strings that end the generation; they are not part of the text.",
                cli=CliFlag(
                    "TEXT",
                    "stop string, may be repeated (default: none; the model's end-of-sequence "
                    "token always stops)",
                    "str",
                    repeated=True,
                    model_default=False,
                ),
            )
        },
    )
    json_schema: Any = field(
        default=None,
        metadata={
            _SPEC: OptionSpec(
                _json_schema_as_given,
                "Constrain the output to JSON valid against this schema (stop strings then do "
                "not apply).",
                per_call=True,
            )
        },
    )

    logprobs: int | None = field(
        default=None,
        metadata={
            _SPEC: OptionSpec(
                validation.check_logprobs,
                "Report each generated token's log-probability and its N likeliest "
                "alternatives (0 to 20; 0: the token's own only); None reports none.",
                per_call=True,
            )
        },
    )

    def __post_init__(self) -> None:
        for name, spec in OPTION_SPECS.items():
            object.__setattr__(self, name, spec.check(getattr(self, name)))

    def updated(self, options: Mapping[str, Any]) -> GenerationOptions:
        """These options with the given ones (None: keep this value) put in; validated.

        Raises TypeError naming any keyword that is not an option.
        """
        check_names(options)
        values = {name: getattr(self, name) for name in OPTION_NAMES}
        values.update((k, v) for k, v in options.items() if v is not None)
        return GenerationOptions(**values)


def check_names(options: Mapping[str, Any]) -> None:
    """TypeError naming the keywords that are not generation options."""
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise TypeError(f"unexpected generation option(s): {', '.join(sorted(unknown))}")


@dataclass(frozen=True)
class GenerationConfig(GenerationOptions):
    """Defaults for generation options; any option passed to a call overrides them.

    ``max_tokens=-1`` means no limit other than the context window. ``seed=None`` draws a
    fresh seed per call. A model starts from these defaults, overridden by the sampling
    settings its checkpoint's generation_config.json sets explicitly.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, spec in OPTION_SPECS.items():
            if spec.per_call and getattr(self, name) is not None:
                raise InvalidParameterError(f"{name} has no model-wide default: pass it per call")

    @classmethod
    def from_hf(cls, generation_config: Mapping[str, Any]) -> GenerationConfig:
        """Defaults overridden by the keys a Hugging Face generation_config.json sets."""
        g = generation_config
        kw = {
            name: g[spec.hf_key]
            for name, spec in OPTION_SPECS.items()
            if spec.hf_key is not None and g.get(spec.hf_key) is not None
        }
        if g.get("do_sample") is False:
            kw["temperature"] = 0.0
        try:
            return cls(**kw)
        except InvalidParameterError:
            return cls()  # a checkpoint's odd defaults must not make it unloadable


OPTION_SPECS: dict[str, OptionSpec] = {f.name: f.metadata[_SPEC] for f in fields(GenerationOptions)}
OPTION_NAMES = frozenset(OPTION_SPECS)
