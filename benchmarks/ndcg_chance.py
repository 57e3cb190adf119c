"""How consistent is a local reward that knows nothing? Chance level of CoMAM's eq. 13.

For a group of ``G`` trajectories of which ``k`` answered correctly (0/1 global rewards), draws
local rewards at random (independent of the answers) and prints the mean and 5th percentile of
the NDCG rank consistency v_n (:func:`agents.credit.rank_consistency`), then the adaptive weight
eq. 14 gives a role at v = 1 against two roles at chance. Read beside the measured v_n of a
training run (docs/credit_ablation.md): a role's consistency means something only above this line.

    python benchmarks/ndcg_chance.py            # G = 8, 4,000 draws per k
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--group-size", type=int, default=8, help="G trajectories per group")
    p.add_argument("--draws", type=int, default=4000, help="random local-reward draws per k")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from agents.credit import adaptive_weights, rank_consistency

    rng = np.random.default_rng(args.seed)
    g = args.group_size
    print(f"| correct answers k of G = {g} | mean v_n of a random local reward | 5th percentile | "
          "w_n of a perfectly consistent role (v = 1) against two roles at that mean |")
    print("|---:|---:|---:|---:|")
    for k in range(1, g):
        answers = np.array([1.0] * k + [0.0] * (g - k))
        v = np.array([rank_consistency(rng.random(g), answers) for _ in range(args.draws)])
        w = adaptive_weights({"a": 1.0, "b": float(v.mean()), "c": float(v.mean())})["a"]
        print(f"| {k} | {v.mean():.3f} | {np.percentile(v, 5):.3f} | {w:.3f} |")


if __name__ == "__main__":
    main()
