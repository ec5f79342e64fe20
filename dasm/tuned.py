"""``dasm-tuned``: DASM with a segment schedule found by ``dasm-bench sweep`` and shipped with the code.

Each shipped schedule is the ``best.json`` a study exported (``dasm/tuned_schedules/<dataset>-ipc<N>.json``,
copied unchanged from ``results/<dataset>/sweeps/<study>/best.json``; a test keeps the two equal).
The study tuned on the VALIDATION split (the distiller never sees it); the test split is only
looked at when the tuned method is evaluated beside the others.

At a tuned IPC the method runs the study's schedule and base learning rate exactly. At any other
IPC of the same dataset it runs the schedule of the nearest tuned IPC (on a log scale) *scaled*:
the segments keep their windows and their shares of IPC (sizes by largest remainder, every segment
at least 1 image per class); where IPC is smaller than K the first segment and the K'-1 last
(hardest) segments are kept. That is a transfer, not a tuning: tables name the source IPC in the
set's metadata (``config.schedule`` is the scaled schedule). A dataset with no shipped schedule is
refused in one line that says how to make one.

Example::

    from bench.methods.registry import default_config
    default_config("dasm-tuned", "digits", 20).schedule    # the study's schedule, verbatim
    scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 5).to_string()   # '2@0-1,3@0.31-1'
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.methods.registry import DistillRequest, register_method
from bench.store.synthetic import SyntheticSet
from dasm.segment_schedule import SegmentSchedule
from dasm.sequential_matching import DIAGNOSTICS, DASMConfig, run_sequential

TUNED_DIR = Path(__file__).parent / "tuned_schedules"


@dataclass(frozen=True)
class TunedSchedule:
    """One shipped study result: where it was tuned and what it found."""

    dataset: str
    ipc: int
    base: str
    schedule: str
    base_overrides: str
    value: float          # the study's best validation accuracy (%)
    source: str           # the file it was read from

    @classmethod
    def from_best_json(cls, path: Path) -> "TunedSchedule":
        try:
            d = json.loads(path.read_text())
            cfg = d["config"]
            return cls(str(d["dataset"]), int(d["ipc"]), str(cfg["base"]), str(cfg["schedule"]),
                       str(cfg.get("base_overrides", "")), float(d["value"]), path.name)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"{path}: not a sweep's best.json ({exc})") from None


@functools.lru_cache(maxsize=1)
def shipped_schedules() -> tuple[TunedSchedule, ...]:
    """Every schedule shipped in ``dasm/tuned_schedules/``, sorted by dataset and IPC."""
    found = [TunedSchedule.from_best_json(p) for p in sorted(TUNED_DIR.glob("*.json"))]
    return tuple(sorted(found, key=lambda t: (t.dataset, t.ipc)))


def scaled_schedule(schedule: SegmentSchedule, ipc: int) -> SegmentSchedule:
    """``schedule`` moved to ``ipc`` images per class: windows kept, sizes in proportion.

    Example::

        scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 50).to_string()   # '20@0-1,30@0.31-1'
    """
    if ipc < 1:
        raise BenchError(f"IPC must be >= 1, got {ipc}")
    if schedule.ipc == ipc:
        return schedule
    keep = list(range(schedule.num_segments))
    if len(keep) > ipc:  # fewer images than segments: the first and the hardest last ones
        keep = [0] + keep[len(keep) - (ipc - 1):] if ipc > 1 else [0]
    shares = [schedule.sizes[i] for i in keep]
    total = float(sum(shares))
    # one image each, the rest by largest remainder of the shares (ties: the earlier segment)
    rest = ipc - len(keep)
    exact = [rest * s / total for s in shares]
    sizes = [1 + math.floor(x) for x in exact]
    order = sorted(range(len(keep)), key=lambda i: (-(exact[i] - math.floor(exact[i])), i))
    for i in order[: ipc - sum(sizes)]:
        sizes[i] += 1
    return SegmentSchedule(tuple(sizes), tuple(schedule.windows[i] for i in keep))


def tuned_for(dataset: str, ipc: int) -> TunedSchedule:
    """The shipped schedule tuned for ``dataset`` nearest to ``ipc`` on a log scale (ties: the
    smaller IPC); a one-line error when the dataset has none."""
    candidates = [t for t in shipped_schedules() if t.dataset == dataset.lower()]
    if not candidates:
        have = sorted({t.dataset for t in shipped_schedules()}) or ["none"]
        raise BenchError(f"dasm-tuned has no tuned schedule for {dataset!r} (shipped: {', '.join(have)}); "
                         f"run `dasm-bench sweep --dataset {dataset} --ipc N`, then copy its best.json "
                         f"into dasm/tuned_schedules/")
    return min(candidates, key=lambda t: (abs(math.log(t.ipc) - math.log(max(ipc, 1))), t.ipc))


@dataclass
class TunedDASMConfig(DASMConfig):
    """DASM's config with ``base``, ``base_overrides`` and ``schedule`` from the shipped study
    nearest to the setting (see the module docstring); any field can still be overridden.
    ``no_reference`` (set by ``for_setting``, as MTT's): why a dataset without a shipped study is
    refused; specs skip those cells with a warning."""

    no_reference: str = ""

    @classmethod
    def for_setting(cls, dataset: str, ipc: int) -> "TunedDASMConfig":
        fields: dict[str, Any] = dict(DASMConfig.for_setting(dataset, ipc).__dict__)
        try:
            tuned = tuned_for(dataset, ipc)
        except BenchError as exc:
            return cls(**fields, no_reference=f"{exc} (asked for IPC {ipc})")
        fields.update(base=tuned.base, base_overrides=tuned.base_overrides,
                      schedule=scaled_schedule(SegmentSchedule.parse(tuned.schedule), ipc).to_string())
        return cls(**fields)

    def validate(self) -> None:
        if self.no_reference:
            raise BenchError(self.no_reference)
        super().validate()


@register_method("dasm-tuned", TunedDASMConfig, kind="dasm",
                 description="DASM with the segment schedule a shipped Optuna study found (dasm/tuned_schedules/)",
                 order=34, colour="#CC79A7", marker="X", diagnostics=DIAGNOSTICS)
def dasm_tuned(request: DistillRequest, config: TunedDASMConfig) -> SyntheticSet:
    """DASM with the tuned schedule for the request's dataset and IPC (scaled from the nearest tuned IPC).

    Example::

        syn = distill("dasm-tuned", DistillRequest(load_dataset("digits"), ipc=20, seed=0))
    """
    return run_sequential(request, config)
