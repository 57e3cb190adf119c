"""Synthetic data at scale: generation time, load time and peak memory per size.

For every size (32k, 128k, 1m by default) the script runs two fresh Python
processes — one that generates the PersonaMem-format folder with
:func:`comam_env.data.synthetic.generate`, one that loads it back through the
PersonaMem loader (:func:`comam_env.data.personamem.load_personamem_dir`) —
so each peak-memory figure (``ru_maxrss`` of that process, which includes the
interpreter and numpy, ~30-60 MB) belongs to one step alone. Prints a table
(or JSON with ``--json``).

    python benchmarks/data_scale.py [--sizes 32k 128k 1m] [--seed 0] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _peak_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _child(step: str, size: str, seed: int, folder: str) -> dict:
    from comam_env.data import synthetic

    if step == "generate":
        cfg = synthetic.SyntheticConfig(size=size, seed=seed)
        t0 = time.perf_counter()
        synthetic.generate(size, seed, folder)
        seconds = time.perf_counter() - t0
        files = {p.name: p.stat().st_size for p in Path(folder).iterdir()}
        meta = json.loads((Path(folder) / "meta.json").read_text())
        return {"seconds": seconds, "peak_mb": _peak_mb(), "contexts": cfg.personas,
                "questions": meta["n_questions"], "tokens_per_context": sum(meta["context_tokens"]) / len(meta["context_tokens"]),
                "bytes": sum(files.values())}
    from comam_env.data.personamem import load_personamem_dir

    t0 = time.perf_counter()
    ds = load_personamem_dir(folder, synthetic.FILE_SUFFIX[size], name=f"synthetic-{size}")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": _peak_mb(), "questions": len(ds.questions),
            "messages": sum(len(h) for h in ds.histories.values())}


def _run(step: str, size: str, seed: int, folder: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", step, "--sizes", size, "--seed", str(seed),
                          "--dir", folder], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{step} {size} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["32k", "128k", "1m"], help="sizes to measure")
    ap.add_argument("--seed", type=int, default=0, help="generator seed")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size; the table shows the fastest")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--child", choices=["generate", "load"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(_child(args.child, args.sizes[0], args.seed, args.dir)))
        return 0

    results = []
    for size in args.sizes:
        best_gen = best_load = None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix=f"data-scale-{size}-") as tmp:
                gen = _run("generate", size, args.seed, tmp)
                load = _run("load", size, args.seed, tmp)
            if best_gen is None or gen["seconds"] < best_gen["seconds"]:
                best_gen = gen
            if best_load is None or load["seconds"] < best_load["seconds"]:
                best_load = load
        results.append({"size": size, "generate": best_gen, "load": best_load})
        if not args.json:
            print(f"  measured {size}", file=sys.stderr)

    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=1))
        return 0
    head = (f"{'size':>5} {'contexts':>8} {'questions':>9} {'tokens/ctx':>10} {'MB on disk':>10} "
            f"{'gen s':>7} {'gen peak MB':>11} {'load s':>7} {'load peak MB':>12}")
    print(head)
    print("-" * len(head))
    for r in results:
        g, l = r["generate"], r["load"]
        print(f"{r['size']:>5} {g['contexts']:>8} {g['questions']:>9} {g['tokens_per_context']:>10.0f} "
              f"{g['bytes'] / 1e6:>10.1f} {g['seconds']:>7.2f} {g['peak_mb']:>11.0f} {l['seconds']:>7.2f} "
              f"{l['peak_mb']:>12.0f}")
    print(f"(seed {args.seed}; best of {args.repeat}; peak = ru_maxrss of a fresh process per step; "
          f"{os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
