"""PettingZoo's own conformance tests on the environment.

``api_test`` plays episodes with random ``Text`` actions sampled from the action
space (random strings over the wide charset), ``seed_test`` checks two envs built
the same way run identically under the same seed, and ``parallel_api_test`` runs
the ``turn_based_aec_to_parallel`` conversion. They run on the hand-built dataset,
on a PersonaMem-format fixture loaded through the real loader, and on synthetic data.
"""

from __future__ import annotations

import warnings

import pytest
from pettingzoo.test import api_test, parallel_api_test, seed_test
from pettingzoo.utils.conversions import turn_based_aec_to_parallel

import comam_env
from comam_env.env import env as make_env

from .conftest import SYNTHETIC_KW

# Small action spaces keep the random actions (and the test) fast; the default
# 16k-character space is exercised in test_env.py.
SMALL = {"max_action_chars": 2000}


def _constructors(tiny_dataset, personamem_dir):
    return {
        "tiny": lambda: make_env(tiny_dataset, judge="gold", episode="full-history", chunk_tokens=30, **SMALL),
        "tiny-multi-query": lambda: make_env(tiny_dataset, judge="gold", queries_per_episode=2, **SMALL),
        "personamem-fixture": lambda: comam_env.make(
            "personamem-32k", data_dir=personamem_dir, split="all", judge="embedding:hashing", **SMALL),
        "synthetic-32k": lambda: comam_env.make("synthetic-32k", data_kwargs=SYNTHETIC_KW, **SMALL),
        "synthetic-32k-full": lambda: comam_env.make(
            "synthetic-32k", split="validation", chunk_tokens=1000, data_kwargs=SYNTHETIC_KW, **SMALL),
    }


CASES = ["tiny", "tiny-multi-query", "personamem-fixture", "synthetic-32k", "synthetic-32k-full"]


@pytest.fixture(params=CASES)
def constructor(request, tiny_dataset, personamem_dir):
    return _constructors(tiny_dataset, personamem_dir)[request.param]


def test_api(constructor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Text spaces trigger "should be Box/Discrete" advice
        api_test(constructor(), num_cycles=20)


def test_seed(constructor):
    seed_test(constructor, num_cycles=20)


def test_parallel_api(constructor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(turn_based_aec_to_parallel(constructor()), num_cycles=30)
