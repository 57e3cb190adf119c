"""Time the reward functions (µs per call) at typical sizes.

Run: ``.venv/bin/python benchmarks/reward_speed.py``

Memory units are made unique per call (a counter in the text) so the content-token
cache does not flatter the numbers ("cold"); the "warm" rows repeat the same texts,
which is what a group of rollouts on one question sees for its evidence.
"""

from __future__ import annotations

import time

import numpy as np

from comam_env.data.schema import Question
from comam_env.rewards import answer_reward, extractor_reward, match_units, retriever_reward

WORDS = (
    "hiking climbing guitar jazz cooking pasta vegan coffee tea marathon novel poetry chess garden "
    "python travel japan paris museum painting yoga swimming cycling camera film sushi baking bread"
).split()


def make_texts(rng: np.random.Generator, n: int, words: int, tag: str) -> list[str]:
    return [f"{tag}{i} I really like " + " ".join(rng.choice(WORDS, size=words)) for i in range(n)]


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1e6


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"{'case':<44} {'us/call':>10}")
    for n_units, n_ev, words in [(10, 3, 15), (50, 5, 20), (200, 5, 20), (1000, 10, 20)]:
        evidence = make_texts(rng, n_ev, words, "ev")
        warm_units = make_texts(rng, n_units, words, "u")
        counter = [0]

        def cold() -> None:
            counter[0] += 1
            units = [f"{u} call{counter[0]}" for u in warm_units]
            extractor_reward(units, evidence)

        repeat = max(20, 20_000 // n_units)
        print(f"{f'extractor_reward cold {n_units}u x {n_ev}e':<44} {timeit(cold, repeat):>10.1f}")
        print(f"{f'extractor_reward warm {n_units}u x {n_ev}e':<44} "
              f"{timeit(lambda: extractor_reward(warm_units, evidence), repeat):>10.1f}")
        print(f"{f'match_units warm {n_units}u x {n_ev}e':<44} "
              f"{timeit(lambda: match_units(warm_units, evidence), repeat):>10.1f}")
    text = "\n".join(make_texts(rng, 8, 20, "r"))
    ev = make_texts(rng, 3, 20, "ev")
    print(f"{'retriever_reward text 8 lines x 3e':<44} {timeit(lambda: retriever_reward(text, ev), 2000):>10.1f}")
    q = Question("q", "h", "t", "t", "which?", ("x", "y", "z", "w"), "c", None, 0)
    resp = "<information>I like jazz</information> The best is (c). <final_answer>(c)</final_answer>"
    print(f"{'answer_reward mcq':<44} {timeit(lambda: answer_reward(resp, q), 5000):>10.1f}")
    qo = Question("q", "h", "locomo_single_hop", "4", "when?", (), "7 May 2023", None, 0)
    print(f"{'answer_reward open (token F1)':<44} "
          f"{timeit(lambda: answer_reward('<final_answer>on 7 May, 2023</final_answer>', qo), 5000):>10.1f}")


if __name__ == "__main__":
    main()
