"""Cost of every baseline system: seconds per question and peak memory, on synthetic-32k/128k.

Each (dataset, system) pair runs in a fresh Python process (so peak RSS is the
system's own), which loads the dataset, calls ``prepare`` (timed separately:
index building, model loading) and answers the first ``--limit`` validation
questions (split seed 0) without writing predictions. Printed per pair:

* ``prepare_s`` — seconds in ``system.prepare(dataset)``;
* ``s_per_question`` — mean wall seconds of ``system.answer`` (the first question
  included, so lazy embedding of a history's texts is counted);
* ``peak_rss_mb`` — the process's peak resident memory at the end, including the
  dataset and any model: ``VmHWM`` of ``/proc/self/status`` (the high-water mark of
  this process's own address space), else ``ru_maxrss``. Linux keeps ``ru_maxrss``
  across ``fork`` + ``exec``, so a worker started by a large parent (``make_results``
  after embedding a dataset with MiniLM: 1.3 GB) reported the parent's size for every
  system.

Embedding-based systems use MiniLM by default and read the persisted dataset
embeddings when they exist (``comam_env.embed.embed_dataset``); pass
``--embedder hashing`` for a quick run. Timings depend on machine load: they
are measurements of this machine at that time, not asserts.

Usage::

    python benchmarks/baselines_cost.py [--sizes 32k 128k] [--systems ...] [--limit 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from comam_env.process_memory import resident_mb

CPU_SYSTEMS = ["random", "longest-option", "question-only", "full-context", "rag", "bm25",
               "heuristic-pipeline", "mem0-style"]
EMBEDDING_SYSTEMS = {"full-context", "rag", "bm25", "heuristic-pipeline", "mem0-style"}


def peak_rss_kb() -> int:
    """This process's peak resident memory in KiB: ``VmHWM`` (reset by ``exec``), else ``ru_maxrss``."""
    return round(resident_mb()[1] * 1024)


def worker(size: str, system_name: str, limit: int, embedder: str | None, seed: int) -> dict:
    from baselines.base import get_system
    from comam_env.data import load_dataset
    from comam_env.registry import split_ids

    dataset = load_dataset(f"synthetic-{size}")
    ids = split_ids(f"synthetic-{size}", dataset, "validation")[:limit]
    kw = {"embedder": embedder} if embedder and system_name in EMBEDDING_SYSTEMS else {}
    system = get_system(system_name, context={"seed": seed}, **kw)
    t0 = time.perf_counter()
    system.prepare(dataset)
    prepare_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for qid in ids:
        q = dataset.question(qid)
        system.answer(q, dataset.history_for(q))
    per_q = (time.perf_counter() - t1) / len(ids)
    rss_kb = peak_rss_kb()
    return {"size": size, "system": system_name, "n_questions": len(ids), "prepare_s": round(prepare_s, 3),
            "s_per_question": round(per_q, 4), "peak_rss_mb": round(rss_kb / 1024, 1),
            "embedder": kw.get("embedder", "minilm" if system_name in EMBEDDING_SYSTEMS else None)}


def measure(sizes, systems, limit: int, embedder: str | None, seed: int = 0, progress: bool = True) -> list[dict]:
    """Run every (size, system) in its own process; returns the rows."""
    rows = []
    pairs = [(s, n) for s in sizes for n in systems]
    try:
        from tqdm.auto import tqdm

        it = tqdm(pairs, desc="cost", disable=not progress)
    except ImportError:  # pragma: no cover
        it = pairs
    for size, name in it:
        cmd = [sys.executable, __file__, "--worker", "--sizes", size, "--systems", name, "--limit", str(limit),
               "--seed", str(seed)]
        if embedder:
            cmd += ["--embedder", embedder]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            rows.append({"size": size, "system": name, "error": proc.stderr.strip().splitlines()[-1:] or ["failed"]})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


def format_rows(rows: list[dict]) -> str:
    out = [f"{'dataset':16s} {'system':20s} {'n':>4s} {'prepare s':>10s} {'s/question':>11s} {'peak MB':>9s}"]
    for r in rows:
        if "error" in r:
            out.append(f"synthetic-{r['size']:7s} {r['system']:20s} error: {r['error'][0]}")
            continue
        out.append(f"synthetic-{r['size']:7s} {r['system']:20s} {r['n_questions']:4d} {r['prepare_s']:10.2f} "
                   f"{r['s_per_question']:11.3f} {r['peak_rss_mb']:9.0f}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["32k", "128k"])
    ap.add_argument("--systems", nargs="+", default=CPU_SYSTEMS)
    ap.add_argument("--limit", type=int, default=10, help="validation questions per system (default 10)")
    ap.add_argument("--embedder", default=None, help="minilm (default) or hashing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.sizes[0], args.systems[0], args.limit, args.embedder, args.seed)))
        return 0
    rows = measure(args.sizes, args.systems, args.limit, args.embedder, args.seed, progress=not args.json)
    print(json.dumps(rows) if args.json else format_rows(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
