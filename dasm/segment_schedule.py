"""DASM's segment schedule: how IPC is split into K segments and which difficulty window each sees.

Segment ``k`` (1-based) distills ``sizes[k-1]`` images per class from the real images whose
per-class difficulty quantile lies in ``windows[k-1] = (lo, hi)`` (0 = easiest, 1 = hardest),
where difficulty is the loss under a model trained on segments ``1..k-1``.

Compact string form (usable as ``--set schedule=...``): comma-separated ``size@lo-hi`` items,
e.g. ``"5@0-1,5@0.25-1"``; a bare ``size`` means the whole range ``0-1``.

Example::

    s = SegmentSchedule.parse("5@0-1,5@0.25-1")
    s.check_ipc(10)
    default_schedule(10, 2)            # SegmentSchedule(sizes=(5, 5), windows=((0.0, 1.0), (0.25, 1.0)))
    default_schedule(10, 2).reversed() # windows ((0.0, 1.0), (0.0, 0.75))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.errors import BenchError

Window = tuple[float, float]

# Default window shift: segment k of K sees [DEFAULT_SHIFT * (k-1)/K, 1]. With 0.5 the last
# segment still sees more than half of every class (both easy and hard features are needed,
# the paper's finding for "drop the easy samples"), and a class of ~113 digits keeps >= 56
# images, enough for a real-initialised segment of IPC 50 / K 2 = 25.
DEFAULT_SHIFT = 0.5


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class SegmentSchedule:
    """K segments: ``sizes`` (images per class, sum = IPC) and difficulty-quantile ``windows``."""

    sizes: tuple[int, ...]
    windows: tuple[Window, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        object.__setattr__(self, "windows", tuple((float(lo), float(hi)) for lo, hi in self.windows))
        if not self.sizes:
            raise BenchError("a segment schedule needs at least one segment")
        if len(self.sizes) != len(self.windows):
            raise BenchError(f"schedule has {len(self.sizes)} segment sizes but {len(self.windows)} windows")
        for k, n in enumerate(self.sizes, 1):
            if n < 1:
                raise BenchError(f"segment {k} has size {n}; every segment needs >= 1 image per class")
        for k, (lo, hi) in enumerate(self.windows, 1):
            if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0):
                raise BenchError(f"segment {k} window [{_fmt(lo)}, {_fmt(hi)}] lies outside [0, 1]")
            if lo >= hi:
                raise BenchError(f"segment {k} window [{_fmt(lo)}, {_fmt(hi)}] is empty (needs lo < hi)")

    # ------------------------------------------------------------------ views
    @property
    def num_segments(self) -> int:
        return len(self.sizes)

    @property
    def ipc(self) -> int:
        return sum(self.sizes)

    def check_ipc(self, ipc: int) -> None:
        """One-line error unless the schedule fits ``ipc`` images per class."""
        if self.num_segments > ipc:
            raise BenchError(f"schedule has {self.num_segments} segments but IPC is {ipc}; K must be <= IPC")
        if self.ipc != ipc:
            raise BenchError(f"schedule sizes {'+'.join(map(str, self.sizes))} = {self.ipc} do not sum to IPC {ipc}")

    def reversed(self) -> "SegmentSchedule":
        """Mirror every window around the middle (``[lo, hi] -> [1-hi, 1-lo]``), sizes unchanged.

        Easy->hard windows become hard->easy ones: each later segment is drawn towards the images
        the earlier segments already fit (low loss) instead of those they miss, while segment 1
        keeps the default's full range. That isolates the *direction* of the difficulty alignment
        (the dasm-reverse ablation)."""
        return SegmentSchedule(self.sizes, tuple((1.0 - hi, 1.0 - lo) for lo, hi in self.windows))

    def full_windows(self) -> "SegmentSchedule":
        """The same sizes with window [0, 1] everywhere (sequential matching without difficulty)."""
        return SegmentSchedule(self.sizes, tuple((0.0, 1.0) for _ in self.sizes))

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "windows": [list(w) for w in self.windows]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegmentSchedule":
        try:
            return cls(tuple(d["sizes"]), tuple(tuple(w) for w in d["windows"]))
        except (KeyError, TypeError, ValueError):
            raise BenchError(f"not a segment schedule: {d!r}") from None

    def to_string(self) -> str:
        return ",".join(f"{n}@{_fmt(lo)}-{_fmt(hi)}" for n, (lo, hi) in zip(self.sizes, self.windows))

    def __str__(self) -> str:
        return self.to_string()

    @classmethod
    def parse(cls, text: str) -> "SegmentSchedule":
        """Parse ``"5@0-1,5@0.25-1"`` (a bare ``"5"`` means window 0-1)."""
        sizes, windows = [], []
        for item in (part.strip() for part in str(text).split(",")):
            if not item:
                continue
            try:
                size, _, window = item.partition("@")
                sizes.append(int(size))
                if window:
                    lo, sep, hi = window.partition("-")
                    if not sep:
                        raise ValueError(item)
                    windows.append((float(lo), float(hi)))
                else:
                    windows.append((0.0, 1.0))
            except ValueError:
                raise BenchError(f"bad schedule item {item!r} in {text!r}; expected SIZE@LO-HI, "
                                 f"e.g. 5@0-1,5@0.25-1") from None
        if not sizes:
            raise BenchError(f"empty schedule {text!r}; expected SIZE@LO-HI items, e.g. 5@0-1,5@0.25-1")
        return cls(tuple(sizes), tuple(windows))


def equal_sizes(ipc: int, k: int) -> tuple[int, ...]:
    """``k`` near-equal sizes summing to ``ipc``; the larger ones first (10, 3 -> 4, 3, 3)."""
    base, extra = divmod(ipc, k)
    return tuple(base + (1 if i < extra else 0) for i in range(k))


def default_schedule(ipc: int, k: int = 2, shift: float = DEFAULT_SHIFT) -> SegmentSchedule:
    """K = min(k, ipc) near-equal segments with growing difficulty: segment j sees
    ``[shift * (j-1)/K, 1]``.

    Segment 1 sees all real data (no earlier model exists to rank it); each later segment drops
    a growing share of the images the earlier segments already fit best, never more than
    ``shift`` of a class, so every window keeps the hard tail *and* part of the middle (the
    paper: easy and hard features are both needed). With IPC < k the schedule has IPC segments
    of one image, and IPC 1 is a single segment (= the base matcher).

    Example::

        default_schedule(50, 2)   # 25@0-1,25@0.25-1
        default_schedule(9, 3)    # 3@0-1,3@0.1667-1,3@0.3333-1
    """
    if ipc < 1:
        raise BenchError(f"IPC must be >= 1, got {ipc}")
    if k < 1:
        raise BenchError(f"the number of segments must be >= 1, got {k}")
    if not 0.0 <= shift < 1.0:
        raise BenchError(f"window shift must be in [0, 1), got {shift}")
    k = min(k, ipc)
    # rounded so that the compact string form (``%g``) round-trips exactly
    return SegmentSchedule(equal_sizes(ipc, k), tuple((round(shift * j / k, 4), 1.0) for j in range(k)))
