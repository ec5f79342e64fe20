"""The grid: methods x IPCs x seeds on one dataset, its cells, their protocols and their keys.

A cell is (method, IPC, seed, architecture, protocol); it is keyed by hashes of resolved configs,
so the same cell has the same key in every run, spec and subset of a spec:

- :func:`distill_key`: a set's content key (method, dataset, IPC, seed, resolved config, split);
  sets are stored as ``<out>/synthetic/<distill_key>.safetensors``;
- :func:`eval_key`: an evaluation cell's key (its set's key, architecture, protocol, models), the
  ``cell_key`` of its results row.

Example::

    spec = GridSpec(methods=["random", "dm"], dataset="digits", ipcs=[1, 10], seeds=[0, 1])
    for method, ipc, seed, arch, protocol, dkey, key in planned_cells(spec):
        ...
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

from bench.data import load_dataset
from bench.errors import BenchError
from bench.evaluation import EvalProtocol, get_protocol, reference_protocol
from bench.models import model_name_ok
from bench.registry import OWN_PROTOCOL, apply_overrides, config_dict, config_hash, default_config, get_method, split_payload


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

    def validate(self) -> None:
        for key in ("methods", "ipcs", "seeds", "archs"):  # the same rules as a spec's (bench.experiment)
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
            if name != OWN:
                get_protocol(name, self.epochs)


def method_protocol(spec: GridSpec, method: str, config: Any) -> EvalProtocol:
    """An explicit protocol as asked; otherwise the method's reference protocol on this dataset
    (DC on MNIST-like data: ``dc-aug``, see :func:`bench.evaluation.reference_protocol`)."""
    name = spec.method_protocols.get(method) or (
        spec.protocol if spec.protocol != OWN_PROTOCOL
        else reference_protocol(getattr(config, "eval_protocol", "dc"), spec.dataset))
    return get_protocol(name, spec.epochs)


OWN = "own"               # in GridSpec.protocols: each method's own protocol
REFERENCE_METHOD = "random"  # evaluated under every protocol of the grid: the same-protocol baseline


def set_protocols(spec: GridSpec, method: str, config: Any) -> list[EvalProtocol]:
    """The protocols one set of ``method`` is evaluated under (without the random rule below)."""
    if not spec.protocols:
        return [method_protocol(spec, method, config)]
    chosen: dict[str, EvalProtocol] = {}
    for name in spec.protocols:
        proto = method_protocol(spec, method, config) if name == OWN else get_protocol(name, spec.epochs)
        chosen.setdefault(proto.name, proto)
    return list(chosen.values())


def grid_protocols(spec: GridSpec, ipc: int) -> list[EvalProtocol]:
    """Every protocol some set of the grid is evaluated under at ``ipc`` (grid order)."""
    seen: dict[str, EvalProtocol] = {}
    for method in spec.methods:
        for proto in set_protocols(spec, method, resolved_config(spec, method, ipc)):
            seen.setdefault(proto.name, proto)
    return list(seen.values())


def cell_protocols(spec: GridSpec, method: str, ipc: int, config: Any) -> list[EvalProtocol]:
    """The protocols of ``method``'s sets at ``ipc``: its own (and the grid's shared ones); with
    several protocols, ``random`` gets every protocol that appears, so each method has a
    same-protocol random row. One protocol per method (the default) is left exactly as it was."""
    if spec.protocols and method == REFERENCE_METHOD:
        return grid_protocols(spec, ipc)
    return set_protocols(spec, method, config)


def planned_cells(spec: GridSpec) -> Iterator[tuple[str, int, int, str, EvalProtocol, str, str]]:
    """Every cell of the grid: (method, ipc, seed, arch, protocol, distill key, cell key)."""
    for method in spec.methods:
        for ipc in spec.ipcs:
            config = resolved_config(spec, method, ipc)
            protocols = cell_protocols(spec, method, ipc, config)
            for seed in spec.seeds:
                dkey = distill_key(method, spec.dataset, ipc, seed, config, spec.train_split)
                for arch in spec.archs:
                    for proto in protocols:
                        yield method, ipc, seed, arch, proto, dkey, eval_key(dkey, arch, proto, spec.num_models)


def resolved_config(spec: GridSpec, method: str, ipc: int) -> Any:
    config = default_config(method, spec.dataset, ipc)
    overrides = spec.overrides.get(method, {})
    if getattr(config, "no_reference", "") and "no_reference" not in overrides:
        return config  # refused (no published setting): plan_tasks skips it, overrides cannot rescue it
    return apply_overrides(config, overrides) if overrides else config


def distill_key(method: str, dataset: str, ipc: int, seed: int, config: Any, train_split: str = "full") -> str:
    """The set's content key; it names the training split unless that is the legacy "train-val"."""
    return config_hash(split_payload({"method": method, "dataset": dataset, "ipc": ipc, "seed": seed,
                                      "config": config_dict(config)}, train_split))


def eval_key(dkey: str, arch: str, protocol: EvalProtocol, num_models: int, seed: int | None = None,
             set_seed: int | None = None) -> str:
    """An evaluation cell's key: the set ``dkey`` trained on ``arch`` under ``protocol``, ``num_models`` models.

    A grid evaluates each set with the set's own seed, so its cells key on the set alone; an
    evaluation seeded otherwise (``dasm-bench evaluate --seed``: ``seed`` != ``set_seed``) is
    another cell and names its seed. The one cell-key scheme of every results row."""
    base = dkey if seed is None or seed == set_seed else f"{dkey}/s{seed}"
    return config_hash({"distill": base, "arch": arch, "protocol": dataclasses.asdict(protocol),
                        "num_models": num_models})

