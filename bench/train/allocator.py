"""The process's C allocator, tuned for training loops: glibc malloc keeps freed memory for reuse.

A CPU training step allocates and frees the same activation-sized blocks (hundreds of KB to a few
MB) every step. glibc's defaults serve blocks above ``M_MMAP_THRESHOLD`` (128 KiB, raised as
blocks are freed) with fresh ``mmap`` pages and hand a heap top larger than ``M_TRIM_THRESHOLD``
back to the kernel, so the next step page-faults the same memory in again: on the digits ConvNet
that was ~30% of an evaluation step's CPU time (issue 17's measurement, raw runs not kept). :func:`tune_allocator`
raises both thresholds and pads heap growth (``mallopt``), so those blocks stay mapped and are
reused. The cost is memory the process keeps after a peak: up to :data:`TRIM_THRESHOLD` +
:data:`TOP_PAD` of free heap, returned when the process exits.

It changes no number (allocation addresses only), applies to the calling process, and is called
where work starts: the CLI (``bench.cli.main.main``) and every job in a worker (``bench.run.jobs.JobEnv``).
``DASM_MALLOC=default`` leaves glibc's defaults; on a C library other than glibc it does nothing.

Example::

    from bench.train.allocator import tune_allocator
    tune_allocator()   # 'tuned' on Linux/glibc
"""

from __future__ import annotations

import ctypes
import os

from bench.errors import BenchError

ENV = "DASM_MALLOC"
MODES = ("tuned", "default")
# glibc malloc.h parameter numbers
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 << 20   # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 256 << 20
TOP_PAD = 64 << 20

_state: str | None = None


def mode_from_env() -> str:
    """``DASM_MALLOC``: ``tuned`` (default) or ``default``."""
    mode = os.environ.get(ENV, "tuned").strip().lower() or "tuned"
    if mode not in MODES:
        raise BenchError(f"{ENV} must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def tune_allocator() -> str:
    """Tune glibc malloc for this process once (see the module docstring); returns what it did:
    ``tuned``, ``default`` (``DASM_MALLOC=default``) or ``unavailable`` (not glibc, or refused)."""
    global _state
    if _state is not None:
        return _state
    if mode_from_env() == "default":
        _state = "default"
        return _state
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it (and mallopt with these parameter numbers)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _state = "unavailable"
        return _state
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(mallopt(param, value) == 1 for param, value in
             ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
    _state = "tuned" if ok else "unavailable"
    return _state
