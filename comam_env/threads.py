"""How many CPU threads torch and BLAS use: ``--threads`` of every command and example.

torch's default is one intra-op thread per *physical core of the machine*, whatever share of
it this process may actually use. On a shared or containerised box that oversubscribes the
CPUs: the issue measured ``examples/custom_credit_loop.py`` at 116–189 s with the defaults and
11.5 s with ``OMP_NUM_THREADS=1`` on a 2-core machine shared by several jobs.

:func:`default_threads` is therefore ``$OMP_NUM_THREADS`` when the user set it, else the CPUs
this process may run on (its CPU affinity, ``os.sched_getaffinity``, further limited by a
cgroup-v2 CPU quota in ``/sys/fs/cgroup/cpu.max``) that are not already busy (the machine's
CPUs minus its 1-minute load average, at least 1), capped at :data:`MAX_DEFAULT_THREADS`
(beyond that the small matrices of this package stop getting faster). Measured on the 2-core
box while other jobs kept its load average at 5–8: ``comam-env demo --threads 1`` 230 s wall
(97 s CPU), ``--threads 2`` 883 s wall (340 s CPU), identical printed results — spinning
OpenMP threads on busy cores cost 3.8×. The thread count never changes results, only speed,
so reading the load does not cost reproducibility. :func:`using_threads`
applies a count to torch (when imported) and to the ``*_NUM_THREADS`` variables read by
libraries imported later, and restores the previous values afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path
from typing import Iterator

#: default cap: more threads rarely help the small per-step matrices of this package
MAX_DEFAULT_THREADS = 8
#: variables read by OpenMP / BLAS / tokenizers backends when they load
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def _cgroup_cpu_limit(path: Path = _CGROUP_CPU_MAX) -> int | None:
    """CPUs allowed by a cgroup-v2 quota (``"<quota> <period>"``), or None when unlimited/absent."""
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may use: its affinity set, limited by a cgroup quota when there is one."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS / Windows have no sched_getaffinity
        n = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    return max(1, min(n, limit) if limit else n)


def idle_cpus() -> int:
    """The machine's CPUs not busy right now: ``os.cpu_count()`` minus the 1-minute load
    average, rounded, at least 1 (the machine's count when the load cannot be read)."""
    total = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return total
    return max(1, min(total, round(total - load)))


def default_threads() -> int:
    """``$OMP_NUM_THREADS`` when set to a positive integer, else
    ``min(available_cpus(), idle_cpus(), 8)``."""
    explicit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if explicit.isdigit() and int(explicit) >= 1:
        return int(explicit)
    return max(1, min(available_cpus(), idle_cpus(), MAX_DEFAULT_THREADS))


def threads_type(text: str) -> int:
    """argparse ``type`` of ``--threads``: a positive integer."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (for scripts outside the ``comam-env`` command, e.g. the examples)."""
    parser.add_argument("--threads", type=threads_type, default=None, metavar="N",
                        help=f"CPU threads for torch/BLAS (default: $OMP_NUM_THREADS, else the CPUs this "
                             f"process may use that are not busy, capped at {MAX_DEFAULT_THREADS})")


def set_threads(n: int | None = None) -> int:
    """Use ``n`` threads (default :func:`default_threads`) from now on; returns the count."""
    if n is None:
        n = default_threads()
    elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be an integer >= 1, got {n!r}")
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def using_threads(n: int | None = None) -> Iterator[int]:
    """:func:`set_threads` for the duration of the block, then the previous settings again
    (in-process callers such as tests are left as they were)."""
    saved_env = {var: os.environ.get(var) for var in THREAD_ENV_VARS}
    torch_before = sys.modules.get("torch")
    saved_torch = torch_before.get_num_threads() if torch_before is not None else None
    try:
        yield set_threads(n)
    finally:
        for var, value in saved_env.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
        torch = sys.modules.get("torch")
        if torch is not None:
            # torch imported during the block started from our count; give it back the one it
            # would have had (the saved count, or the default for the restored environment)
            torch.set_num_threads(saved_torch if saved_torch is not None else default_threads())
