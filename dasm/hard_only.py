"""The ``hard-only`` ablation: drop the easiest real images once, then distill the whole IPC with the base.

The paper's "naive approach": rank the real training images by their loss under a model trained
on the real training split (short budget), drop the easiest ``drop_fraction`` of every class
(quantile < f; the kept pool is the window [f, 1] of :func:`dasm.difficulty.window_pool`), and
run the base matcher once on what is left. DASM's claim is that this loses to sequential
easy -> hard matching because easy features are needed too.

It runs as ONE segment of DASM's own loop (:func:`dasm.sequential_matching.run_sequential` with
schedule ``IPC@f-1``), so the base gets exactly DASM's mechanics (with IDC: SeqMatch's segment-1
budget, network schedule and validation-chosen checkpoint) and the dropped share defaults to the
share DASM's default last window drops (0.25 = ``[0.25, 1]`` at K = 2): hard-only and dasm
differ only in the sequencing.

Example::

    syn = distill("hard-only", DistillRequest(load_dataset("digits"), ipc=10, seed=0), overrides={"base": "dm"})
    syn.metadata["hard_only"]["pool_min_per_class"]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.data.datasets import settings_name
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, register_method
from bench.protocols import EvalProtocol, get_protocol
from bench.store.synthetic import SyntheticSet
from dasm.base_matcher import BaseMatcherConfig
from dasm.segment_schedule import SegmentSchedule, default_schedule
from dasm.sequential_matching import DASMConfig, run_sequential

# the share of each class DASM's default schedule drops in its last window (K = 2: [0.25, 1])
DASM_LAST_WINDOW_DROP = default_schedule(DASMConfig.segments, DASMConfig.segments).windows[-1][0]


@dataclass
class HardOnlyConfig(BaseMatcherConfig):
    """``base`` / ``base_overrides`` as in DASM; ``drop_fraction`` f of each class's easiest real
    images is removed (default :data:`DASM_LAST_WINDOW_DROP` = 0.25: the same share DASM's default
    last window drops, so the two differ only in sequencing); the ranking model trains on the real
    split for ``real_ranking_epochs`` under ``difficulty_protocol`` ("" = the base's evaluation
    protocol) with ``difficulty_arch``."""

    drop_fraction: float = DASM_LAST_WINDOW_DROP
    real_ranking_epochs: int = 30
    difficulty_protocol: str = ""
    difficulty_arch: str = "convnet"

    @classmethod
    def for_setting(cls, dataset: str, ipc: int) -> "HardOnlyConfig":
        """The same real-data ranking budget as :class:`dasm.sequential_matching.DASMConfig` (one source)."""
        return cls(real_ranking_epochs=DASMConfig.for_setting(dataset, ipc).real_ranking_epochs)

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.drop_fraction < 1.0:
            raise BenchError(f"drop_fraction must be in [0, 1), got {self.drop_fraction}")
        if self.real_ranking_epochs < 1:
            raise BenchError(f"real_ranking_epochs must be >= 1, got {self.real_ranking_epochs}")
        self.ranking_protocol()

    def ranking_protocol(self) -> EvalProtocol:
        return get_protocol(self.difficulty_protocol or self.eval_protocol, self.real_ranking_epochs)


@register_method("hard-only", HardOnlyConfig, kind="dasm",
                 description="ablation: drop the easiest real images once, distill the whole IPC with the base",
                 order=31, colour="#009E73", marker="H")
def hard_only(request: DistillRequest, config: HardOnlyConfig) -> SyntheticSet:
    """Distill ``request.ipc`` images per class from the hardest ``1 - drop_fraction`` of each class.

    Example::

        syn = distill("hard-only", DistillRequest(load_dataset("digits"), ipc=2, seed=0),
                      overrides={"base": "random", "drop_fraction": 0.3})
    """
    sequential = dataclasses.replace(
        DASMConfig.for_setting(settings_name(request.data.name), request.ipc), base=config.base,
        base_overrides=dict(config.base_overrides), schedule=f"{request.ipc}@{config.drop_fraction:g}-1",
        real_ranking_epochs=config.real_ranking_epochs, difficulty_protocol=config.difficulty_protocol,
        difficulty_arch=config.difficulty_arch)
    schedule = SegmentSchedule.parse(sequential.schedule)
    joined = run_sequential(request, sequential, schedule=schedule)
    record = joined.metadata["dasm"]["segments"][0]
    syn = SyntheticSet(joined.images, joined.labels, joined.factor, metadata={"hard_only": {
        "base": config.base, "window": list(schedule.windows[0]),
        **{k: v for k, v in record.items() if k not in ("segment", "window", "ranked_by")}}})
    return syn
