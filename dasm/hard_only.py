"""The ``hard-only`` ablation: drop the easiest real images once, then distill the whole IPC with the base.

The paper's "naive approach": rank the real training images by their loss under a model trained
on the real training split (short budget), drop the easiest ``drop_fraction`` of every class
(quantile < f; the kept pool is the window [f, 1] of :func:`dasm.difficulty.window_pool`), and
run the base matcher once on what is left. DASM's claim is that this loses to sequential
easy -> hard matching because easy features are needed too.

Example::

    syn = distill("hard-only", DistillRequest(load_dataset("digits"), ipc=10, seed=0), overrides={"base": "dm"})
    syn.metadata["hard_only"]["pool_min_per_class"]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.evaluation import EvalProtocol, get_protocol
from bench.registry import DistillRequest, distill, register_method
from bench.synthetic import SyntheticSet
from dasm.base_matcher import DEFAULT_BASE, BaseEvalProtocol, base_config, check_base, parse_base_overrides
from dasm.difficulty import class_quantiles, pool_loss_stats, window_pool
from dasm.sequential_matching import RANKING_SEED_OFFSET, real_data_ranking


@dataclass
class HardOnlyConfig:
    """``base`` / ``base_overrides`` as in DASM; ``drop_fraction`` f of each class's easiest real
    images is removed (0.5: the same share DASM's default last window drops, so the two differ only
    in sequencing); the ranking model trains on the real split for ``real_ranking_epochs`` under
    ``difficulty_protocol`` ("" = the base's evaluation protocol) with ``difficulty_arch``."""

    base: str = DEFAULT_BASE
    base_overrides: dict[str, Any] = field(default_factory=dict)
    drop_fraction: float = 0.5
    real_ranking_epochs: int = 30
    difficulty_protocol: str = ""
    difficulty_arch: str = "convnet"

    eval_protocol = BaseEvalProtocol()  # the base's protocol; not a field, it follows `base`

    def __post_init__(self) -> None:
        self.base_overrides = parse_base_overrides(self.base_overrides)

    @classmethod
    def for_setting(cls, dataset: str, ipc: int) -> "HardOnlyConfig":
        """The same real-data ranking budgets as :class:`dasm.sequential_matching.DASMConfig`."""
        name = dataset.lower()
        if name == "digits":
            return cls(real_ranking_epochs=8)
        if name == "mnist5k":
            return cls(real_ranking_epochs=3)
        return cls()

    def validate(self) -> None:
        check_base(self.base, self.base_overrides)
        if not 0.0 <= self.drop_fraction < 1.0:
            raise BenchError(f"drop_fraction must be in [0, 1), got {self.drop_fraction}")
        if self.real_ranking_epochs < 1:
            raise BenchError(f"real_ranking_epochs must be >= 1, got {self.real_ranking_epochs}")
        self.ranking_protocol()

    def ranking_protocol(self) -> EvalProtocol:
        return get_protocol(self.difficulty_protocol or self.eval_protocol, self.real_ranking_epochs)


@register_method("hard-only", HardOnlyConfig, kind="dasm",
                 description="ablation: drop the easiest real images once, distill the whole IPC with the base",
                 order=31, colour="#CC79A7", marker="^")
def hard_only(request: DistillRequest, config: HardOnlyConfig) -> SyntheticSet:
    """Distill ``request.ipc`` images per class from the hardest ``1 - drop_fraction`` of each class.

    Example::

        syn = distill("hard-only", DistillRequest(load_dataset("digits"), ipc=2, seed=0),
                      overrides={"base": "random", "drop_fraction": 0.3})
    """
    data = request.data
    scores = real_data_ranking(request, config.difficulty_arch, config.ranking_protocol(),
                               request.seed + RANKING_SEED_OFFSET)
    quantiles = class_quantiles(scores, data.train.labels, data.num_classes, request.pool)
    window = (config.drop_fraction, 1.0)
    pool = window_pool(quantiles, data.train.labels, window, data.num_classes)
    sub = DistillRequest(data, request.ipc, request.seed, request.device, pool=pool, frozen=request.frozen,
                         progress=request.progress, segment=request.segment)
    syn = distill(config.base, sub, base_config(config.base, data.name, request.ipc, config.base_overrides))
    sizes = [len(p) for p in pool]
    syn.metadata = {"hard_only": {
        "base": config.base, "window": list(window), "pool_size": sum(sizes), "pool_min_per_class": min(sizes),
        **pool_loss_stats(scores, pool, request.pool), "base_metadata": dict(syn.metadata),
    }}
    return syn
