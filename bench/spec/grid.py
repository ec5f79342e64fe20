"""The grid: methods x IPCs x seeds on one dataset, evaluated on architectures under protocols.

What a grid's cells are, how they are keyed and which protocol each is evaluated under is
:mod:`bench.spec.cells` (the one owner of the cell).

Example::

    spec = GridSpec(methods=["random", "dm"], dataset="digits", ipcs=[1, 10], seeds=[0, 1])
    spec.validate()
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.data.datasets import load_dataset
from bench.errors import BenchError
from bench.methods.registry import get_method
from bench.protocols import get_protocol
from bench.train.models import model_name_ok
from bench.vocabulary import OWN_PROTOCOL, normalise_protocol


@dataclass
class GridSpec:
    """Methods x IPCs x seeds on one dataset, evaluated on ``archs``."""

    methods: list[str]
    dataset: str
    ipcs: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    archs: list[str] = field(default_factory=lambda: ["convnet"])
    protocol: str = OWN_PROTOCOL       # OWN_PROTOCOL: each method's own (config.eval_protocol, else "dc")
    epochs: int | None = None          # evaluation budget override (CPU runs)
    num_models: int = 5
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method config overrides
    method_protocols: dict[str, str] = field(default_factory=dict)      # per-method protocol (beats `protocol`)
    # several protocols per set, e.g. ["own", "idc"] ("own": the method's own, as above); empty:
    # one protocol per method as above. Random is evaluated under every protocol that appears.
    protocols: list[str] = field(default_factory=list)
    data_root: str | None = None
    download: bool = False
    train_split: str = "full"          # "full": the whole training set (reproduction); "train-val": tuning

    def __post_init__(self) -> None:
        # one sentinel: "own" (a legacy "default" from an older spec or saved grid means the same)
        self.protocol = normalise_protocol(self.protocol)
        self.protocols = [normalise_protocol(p) for p in self.protocols]

    def validate(self) -> None:
        for key in ("methods", "ipcs", "seeds", "archs"):  # the same rules as a spec's (bench.spec.experiment)
            if not getattr(self, key):
                raise BenchError(f"the grid needs at least one of {key}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise BenchError(f"seeds must be integers >= 0, got {self.seeds}")
        for m in self.methods:
            get_method(m)
        data = load_dataset(self.dataset, self.data_root, self.download, self.train_split)
        for ipc in self.ipcs:
            data.check_ipc(ipc)
        for arch in self.archs:
            model_name_ok(arch)
        if self.num_models < 1:
            raise BenchError(f"num_models must be >= 1, got {self.num_models}")
        if self.protocol != OWN_PROTOCOL:
            get_protocol(self.protocol, self.epochs)
        for name in self.method_protocols.values():
            get_protocol(name, self.epochs)
        for name in self.protocols:
            if normalise_protocol(name) != OWN_PROTOCOL:
                get_protocol(name, self.epochs)
