"""comam_env.threads: the default thread count follows what the process may use, --threads is
applied for a run and undone after it, and every CLI entry point and example takes it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from comam_env import threads

ROOT = Path(__file__).resolve().parents[1]


def test_default_is_omp_num_threads_when_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")  # ignored, like OpenMP ignores it
    assert threads.default_threads() == min(threads.available_cpus(), threads.idle_cpus(), threads.MAX_DEFAULT_THREADS)


def test_default_is_the_affinity_capped(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda path=None: None)
    monkeypatch.setattr(threads, "idle_cpus", lambda: 64)
    assert threads.available_cpus() == 64 and threads.default_threads() == threads.MAX_DEFAULT_THREADS
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.default_threads() == 2


def test_default_leaves_busy_cpus_alone(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda path=None: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (7.5, 6.0, 5.0))  # the shared box: 1, not 2
    assert threads.idle_cpus() == 1 and threads.default_threads() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.1, 0.1))  # idle: both CPUs
    assert threads.idle_cpus() == 2 and threads.default_threads() == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a big host, 8 CPUs of quota, load 40
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda path=None: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 40.0, 40.0))
    assert threads.default_threads() == 8


def test_cgroup_quota_limits_the_cpus(tmp_path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # 1.5 CPUs -> 2
    assert threads._cgroup_cpu_limit(quota) == 2
    quota.write_text("max 100000\n")
    assert threads._cgroup_cpu_limit(quota) is None
    assert threads._cgroup_cpu_limit(tmp_path / "absent") is None
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpu_limit", lambda path=None: 3)
    assert threads.available_cpus() == 3


def test_using_threads_applies_and_restores(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    with threads.using_threads(2) as n:
        assert n == 2 and torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    assert torch.get_num_threads() == before and os.environ["OMP_NUM_THREADS"] == "1"
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        threads.set_threads(0)


def test_every_example_takes_threads():
    """Each runnable example applies a --threads flag (examples/sb3_*.py through sb3_common)."""
    scripts = [p for p in sorted((ROOT / "examples").glob("*.py")) if "__main__" in p.read_text(encoding="utf-8")]
    assert len(scripts) >= 5
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        if path.name.startswith("sb3_"):
            text = (ROOT / "examples" / "sb3_common.py").read_text(encoding="utf-8")
        assert re.search(r"add_threads_argument\(|threads: int \| None", text), path.name
        assert "set_threads(" in text, path.name
