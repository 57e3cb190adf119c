"""The ``gymnasium`` spaces of the text view: ``Text`` over one wide charset, built once.

All ``Text`` spaces of the environment share the charset of :mod:`comam_env.charset` (all
assigned Unicode except controls other than newline/tab, surrogates and private use), so
real conversation text fits. Building such a space is expensive (~0.25 s, ~20 MB), so one
prototype per length is built and shallow-copied; sampling is vectorised.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import numpy as np
from gymnasium import spaces

from comam_env.charset import charset

__all__ = ["UnicodeText", "text_space", "observation_space", "OBS_FIELDS"]

#: Text fields of a text-view observation (besides the integer ``role``).
OBS_FIELDS = ("prompt", "chunk", "memory", "query", "options")


class UnicodeText(spaces.Text):
    """``gymnasium.spaces.Text`` over the wide charset, with a fast uniform ``sample``.

    ``Text.sample`` turns its 145k-character tuple into an array on every call
    (~50 ms); here the array is built once and shared, and unmasked sampling
    draws character indices directly (~0.2 ms for 2k characters). Masked or
    probability-weighted sampling falls back to ``Text.sample``. Everything else
    (``contains``, equality, flattening) is ``Text``'s own.
    """

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        length = int(self.np_random.integers(self.min_length, self.max_length + 1))
        chars = _charset_array()
        return "".join(chars[self.np_random.integers(0, len(chars), size=length)])


@functools.lru_cache(maxsize=1)
def _charset_array() -> np.ndarray:
    return np.array(list(charset()))


@functools.lru_cache(maxsize=8)
def _text_prototype(max_length: int) -> UnicodeText:
    # Building a Text over ~145k characters takes ~0.25 s and ~20 MB (gymnasium
    # indexes the charset); build it once per length and hand out shallow copies
    # that share the immutable tables but own their random generator.
    return UnicodeText(max_length, min_length=0, charset=charset())


def text_space(max_length: int) -> UnicodeText:
    """A fresh ``Text(0, max_length)`` space over :func:`comam_env.charset.charset`."""
    space = copy.copy(_text_prototype(int(max_length)))
    space._np_random = None  # own, unseeded generator (seed_test seeds each agent's space)
    return space


def observation_space(max_chars: int) -> spaces.Dict:
    """One agent's observation space: ``Dict(role=Discrete(3), prompt=Text, chunk=Text, …)``
    (a ``Dict`` and not a bare ``Text``: PettingZoo's ``api_test`` dtype-checks bare ``Text``)."""
    return spaces.Dict({"role": spaces.Discrete(3), **{k: text_space(max_chars) for k in OBS_FIELDS}})
