from pathlib import Path

import pytest

from comam_env.process_memory import resident_mb


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_current_and_peak_come_together_and_track_a_real_allocation():
    now, peak = resident_mb()
    assert 0 < now <= peak
    ballast = bytearray(64 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # touch every page: resident
    now_after, peak_after = resident_mb()
    assert now_after >= now + 60 and peak_after >= now_after
    del ballast
