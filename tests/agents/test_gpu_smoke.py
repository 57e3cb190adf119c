"""benchmarks/gpu_smoke.sh --check-only on a machine without a GPU: exit 1 with one line naming
the reason, never a traceback (the GPU run itself cannot be tested here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(_has_gpu(), reason="a GPU is present: --check-only succeeds here")
@pytest.mark.parametrize("cmd", [["bash", "benchmarks/gpu_smoke.sh", "--check-only"],
                                 [sys.executable, "benchmarks/gpu_smoke.py", "--check-only"]])
def test_check_only_fails_with_one_line_reason(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    lines = [x for x in out.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("gpu_smoke: ") and "GPU" in lines[0], out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_unknown_option_is_a_usage_error():
    out = subprocess.run(["bash", "benchmarks/gpu_smoke.sh", "--bogus"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown option --bogus" in out.stderr
