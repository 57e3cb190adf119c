"""This process's resident memory, for the benchmarks' peak-memory figures.

Both numbers come from ``/proc/self/status`` (``VmRSS`` now, ``VmHWM`` the high-water mark)
because the kernel keeps them together there: ``ru_maxrss`` and ``/proc/self/statm`` count pages
differently, so a current RSS read from one could exceed a peak read from the other, and Linux
keeps ``ru_maxrss`` across ``fork`` + ``exec``, so a worker started by a large parent would report
the parent's size (``VmHWM`` is reset by ``exec``). Without ``/proc`` (macOS) the current RSS is
unknown and the peak is ``ru_maxrss``.
"""

from __future__ import annotations

import resource
import sys


def resident_mb() -> tuple[float | None, float]:
    """``(now, peak)``: this process's resident set now (None without ``/proc``) and its peak so
    far, in MB (2**20 bytes); the peak always covers the current value."""
    fields = {}
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) / 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        fields = {}
    if "VmRSS" in fields and "VmHWM" in fields:
        return fields["VmRSS"], max(fields["VmHWM"], fields["VmRSS"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return None, peak / (2**20 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux
