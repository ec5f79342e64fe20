"""The range of every number a user or a file gives the harness, and the checks that enforce them.

A flag, a ``--set`` field, a spec field, a sidecar field, a results cell or a claim file is
checked where it enters, against one of the ranges below, and a value outside is a one-line
:class:`BenchError` that states the range. The ranges are wide enough for every real run (ten
times the largest published setting) and narrow enough that nothing downstream overflows:
seeds are mixed into torch and numpy seeds (``seed * 1_000_003 + stream``), the IDC decoder
allocates ``factor**2`` images per stored one, an optimizer turns a huge learning rate into inf.

Example::

    check_int(meta["factor"], "sidecar factor", 1, MAX_FACTOR)     # 1000000 -> BenchError "... in [1, 16]"
    check_number(lr, "--lr", 0, MAX_LR, low_open=True)              # 1e308 -> BenchError "... in (0, 10]"
"""

from __future__ import annotations

import math
import numbers
from typing import Any

from bench.errors import BenchError

MAX_SEED = 2**32 - 1          # numpy's seed range; times 1_000_003 it still fits torch's 64 bits
MAX_IPC = 100_000             # images per class (the largest published setting is IPC 1,250)
MAX_EPOCHS = 100_000          # evaluation / training epochs (the references train 300-1,000)
MAX_MODELS = 1_000            # fresh models per evaluation
MAX_COUNT = 1_000_000         # trials, iterations-like counts given on the command line
MAX_WORKERS = 4_096           # processes, threads, CPUs, Slurm jobs
MAX_FACTOR = 16               # IDC's multi-formation factor (the reference uses 2 and 3)
MAX_LR = 10.0                 # an evaluation learning rate (the protocols use 0.01 - 0.1)
MAX_PID = 2**22               # Linux's largest pid_max (PID_MAX_LIMIT)
MAX_CONFIG_INT = 2**31 - 1    # any integer config field (--set, a spec's method table)
MAX_CONFIG_FLOAT = 1e6        # |any float config field| (MTT's lr_img on ImageNet is 1e4)


def _bounds(low: float | None, high: float | None, low_open: bool) -> str:
    left = "(" if low_open else "["
    return f"{left}{'-inf' if low is None else _edge(low)}, {'inf' if high is None else _edge(high)}]"


def _edge(bound: float) -> str:
    # integers exactly: ':g' would say 4.29497e+09 for MAX_SEED, a range nobody can type back
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def check_int(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int when it is one (not a bool, not a float) in ``[low, high]``; else a
    BenchError naming ``what`` and the range.

    Example::

        seed = check_int(raw_seed, "spec seeds", 0, MAX_SEED)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BenchError(f"{what} must be an integer in {_bounds(low, high, False)}, got {_shown(value)}")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise BenchError(f"{what} must be an integer in {_bounds(low, high, False)}, got {_shown(value)}")
    return value


def check_number(value: Any, what: str, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``low_open``); ints are
    accepted, bools, complex numbers, NaN and inf are not.

    Example::

        lr = check_number(args.lr, "--lr", 0, MAX_LR, low_open=True)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BenchError(f"{what} must be a number in {_bounds(low, high, low_open)}, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        number = math.inf if value > 0 else -math.inf
    inside = math.isfinite(number) and (low is None or number > low or (number == low and not low_open)) \
        and (high is None or number <= high)
    if not inside:
        raise BenchError(f"{what} must be a finite number in {_bounds(low, high, low_open)}, got {_shown(value)}")
    return number


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
