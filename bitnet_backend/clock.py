"""GenerationClock: the timestamps of one generation, turned into its Timings."""

from __future__ import annotations

from time import perf_counter

from .completion import Timings


class GenerationClock:
    """Marks the phases of one generation; a handful of clock reads per call, none per token.

    Started when the generation starts; ``prompt_done`` after the prompt evaluation,
    ``first_token`` after the first sampling, ``timings`` at the end.
    """

    __slots__ = ("_first", "_prompt_done", "_prompt_tokens", "_start")

    def __init__(self) -> None:
        self._start = perf_counter()
        self._prompt_done = self._first = self._start
        self._prompt_tokens = 0

    def prompt_done(self, evaluated_tokens: int) -> None:
        self._prompt_done = perf_counter()
        self._prompt_tokens = evaluated_tokens

    def first_token(self) -> None:
        self._first = perf_counter()

    def timings(self, generated_tokens: int) -> Timings:
        end = perf_counter()
        first = max(self._first, self._prompt_done)
        return Timings(
            prompt_tokens=self._prompt_tokens,
            prompt_ms=(self._prompt_done - self._start) * 1e3,
            generated_tokens=generated_tokens,
            generation_ms=(end - self._prompt_done) * 1e3,
            ttft_ms=(first - self._start) * 1e3,
        )
