"""Answer-only probes on the registered synthetic tracks' splits (issue 13 item 7).

For every size: the train and validation question counts of ``comam_env.make`` (split by
persona), the accuracy of the longest-option, shortest-option and question-only probes on
each split, and of a per-type length rule fitted on train (for every question type the
length rank that scores best on train) on validation, beside the binomial 95% half-width
around chance (1/4). ``tests/data/test_synthetic_splits.py`` asserts all of them in the band.

    python benchmarks/synthetic_probes.py [--sizes mini 32k 128k 1m] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["mini", "32k", "128k", "1m"], help="synthetic sizes")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    import comam_env
    from comam_env.probes import (length_rank_option, longest_option, probe_accuracy, question_similarity_option,
                                  shortest_option)

    out = {}
    for size in args.sizes:
        envs = {s: comam_env.make(f"synthetic-{size}", split=s).unwrapped for s in ("train", "validation")}
        ds = envs["train"].dataset
        qs = {s: [ds.question(i) for i in e.question_ids] for s, e in envs.items()}
        by_type = collections.defaultdict(list)
        for q in qs["train"]:
            by_type[q.qtype].append(q)
        rank = {t: max(range(4), key=lambda k: probe_accuracy(v, lambda q: length_rank_option(q, k)))
                for t, v in by_type.items()}
        row = {}
        for split, questions in qs.items():
            row[split] = {
                "n": len(questions), "personas": len({q.persona_id for q in questions}),
                "band_half_width": 1.96 * math.sqrt(0.25 * 0.75 / len(questions)),
                "longest_option": probe_accuracy(questions, longest_option),
                "shortest_option": probe_accuracy(questions, shortest_option),
                "question_only": probe_accuracy(questions, question_similarity_option),
            }
        row["validation"]["per_type_length_rule"] = probe_accuracy(qs["validation"],
                                                                  lambda q: length_rank_option(q, rank[q.qtype]))
        out[size] = row
        if not args.json:
            for split, r in row.items():
                extra = f" per-type rule {r['per_type_length_rule']:.3f}" if "per_type_length_rule" in r else ""
                print(f"synthetic-{size:5s} {split:10s} n={r['n']:5d} ({r['personas']:3d} personas)  chance 0.250 "
                      f"± {r['band_half_width']:.3f}: longest {r['longest_option']:.3f} shortest "
                      f"{r['shortest_option']:.3f} question-only {r['question_only']:.3f}{extra}", flush=True)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
