"""benchmarks/baselines_cost.py: a worker's peak memory is its own, not its parent's, and the
cost rows draw the env's validation questions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.scripts import ROOT, load_script


def _load():
    return load_script("benchmarks/baselines_cost.py")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_worker_peak_is_not_the_parents():
    """Linux keeps ru_maxrss across fork + exec: a child of a 300 MB parent reported >= 300 MB
    (every row of the cost table read 1266 MB, make_results' own size, once it had loaded MiniLM)."""
    cost = _load()
    ballast = bytearray(300 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touch every page: resident
    code = (f"import importlib.util, resource; s = importlib.util.spec_from_file_location('c', "
            f"{str(ROOT / 'benchmarks' / 'baselines_cost.py')!r}); m = importlib.util.module_from_spec(s); "
            "s.loader.exec_module(m); print(m.peak_rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    own, inherited = map(int, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True).stdout.split())
    assert inherited >= 300 * 1024  # the quirk the helper avoids
    assert own < 200 * 1024  # a bare interpreter: tens of MB
    assert cost.peak_rss_kb() >= 300 * 1024  # this process does hold the ballast
    del ballast


def test_worker_answers_the_envs_validation_questions(monkeypatch):
    cost = _load()
    from comam_env.data import load_dataset
    from comam_env.registry import split_ids

    seen = []
    import baselines.probes as probes

    real = probes.LongestOptionProbe.answer

    def spy(self, question, history):
        seen.append(question.question_id)
        return real(self, question, history)

    monkeypatch.setattr(probes.LongestOptionProbe, "answer", spy)
    row = cost.worker("32k", "longest-option", 3, None, 0)
    assert row["n_questions"] == 3 and row["peak_rss_mb"] > 0
    assert seen == split_ids("synthetic-32k", load_dataset("synthetic-32k"), "validation")[:3]
