"""How well the heuristic evidence annotator recovers gold evidence, measured on synthetic data.

Real PersonaMem has no gold evidence, so the synthetic generator's gold
(evidence.jsonl) is the only reference available offline. For each annotator
setting this prints, over all questions: any-hit (at least one gold message
found), mean recall and mean precision of the annotated message indices, and
the annotation time.

    .venv/bin/python benchmarks/evidence_annotator.py [--size 32k] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from comam_env.data.evidence import AnnotatorConfig
from comam_env.data.personamem import load_personamem_dir
from comam_env.data.synthetic import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="32k")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(args.size, args.seed, tmp)
        fsize = "1M" if args.size.lower() == "1m" else args.size
        gold = load_personamem_dir(folder, fsize)
        print(f"synthetic-{args.size} seed {args.seed}: {len(gold.questions)} questions")
        print(f"{'k':>3} {'window':>16} {'any-hit':>8} {'recall':>7} {'precision':>9} {'seconds':>8}")
        for k in (1, 3, 5):
            for wmin, wrel in ((1500, 0.15), (3000, 0.3), (10**12, 0.0)):
                t0 = time.perf_counter()
                heur = load_personamem_dir(folder, fsize, evidence="heuristic",
                                           annotator=AnnotatorConfig(k=k, window_min_tokens=wmin, window_rel=wrel))
                dt = time.perf_counter() - t0
                hit = rec = prec = 0.0
                for g, h in zip(gold.questions, heur.questions):
                    G, H = set(g.evidence or ()), set(h.evidence or ())
                    hit += bool(G & H)
                    rec += len(G & H) / max(1, len(G))
                    prec += len(G & H) / max(1, len(H))
                n = len(gold.questions)
                window = "whole history" if wmin >= 10**12 else f"±max({wmin},{wrel:.0%})"
                print(f"{k:>3} {window:>16} {hit / n:>8.3f} {rec / n:>7.3f} {prec / n:>9.3f} {dt:>8.2f}")


if __name__ == "__main__":
    main()
