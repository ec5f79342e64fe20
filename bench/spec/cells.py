"""The cell, and the one place that says which cells a grid has.

A cell is one evaluation: a synthetic set (method, dataset, IPC, seed, resolved config, training
pool) trained on an architecture under a protocol, with a number of fresh models. It owns

- its identity: :attr:`Cell.key`, the ``cell_key`` of its results row (:func:`eval_key`), and its
  set's content key :attr:`SetPlan.distill_key` (:func:`bench.methods.config.distill_key`, the one
  formula); sets are stored as ``<out>/synthetic/<distill_key>.safetensors``;
- its protocol: :func:`method_protocol` is the one resolver of "a method's own protocol" in a grid,
  with the one sentinel :data:`bench.vocabulary.OWN_PROTOCOL`;
- enumeration: :func:`plan_sets` / :func:`cells` are the one iterator every runner, plan, table,
  claim and budget ladder uses. A set the method refuses (``config.no_reference``, e.g. MTT above
  IPC 50 with no published setting) is planned with its reason and has no cells.

Keys are hashes of resolved configs, so the same cell has the same key in every run, spec and
subset of a spec.

Example::

    spec = GridSpec(methods=["random", "dm"], dataset="digits", ipcs=[1, 10], seeds=[0, 1])
    for cell in cells(spec):
        print(cell.method, cell.ipc, cell.seed, cell.protocol.name, cell.key)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

from bench.methods.config import apply_overrides, config_hash, distill_key
from bench.methods.registry import default_config
from bench.protocols import EvalProtocol, get_protocol, reference_protocol
from bench.spec.grid import GridSpec
from bench.vocabulary import OWN_PROTOCOL, REFERENCE_METHOD, normalise_protocol


@dataclass(frozen=True)
class Cell:
    """One evaluation cell: the set ``distill_key`` on ``arch`` under ``protocol``, ``num_models`` models."""

    method: str
    ipc: int
    seed: int
    arch: str
    protocol: EvalProtocol
    num_models: int
    distill_key: str

    @property
    def key(self) -> str:
        return eval_key(self.distill_key, self.arch, self.protocol, self.num_models)


@dataclass(frozen=True)
class SetPlan:
    """One synthetic set of a grid and the cells it is evaluated in (none when ``refused``)."""

    method: str
    ipc: int
    seed: int
    config: Any
    distill_key: str
    cells: tuple[Cell, ...]
    refused: str = ""   # the method's reason for not distilling this set (config.no_reference)


def plan_sets(spec: GridSpec) -> Iterator[SetPlan]:
    """Every set of ``spec`` (methods, then IPCs, then seeds), each with its cells (architectures,
    then protocols). The one enumeration of a grid."""
    for method in spec.methods:
        for ipc in spec.ipcs:
            config = resolved_config(spec, method, ipc)
            refused = str(getattr(config, "no_reference", "") or "")
            protocols = [] if refused else cell_protocols(spec, method, ipc, config)
            for seed in spec.seeds:
                dkey = distill_key(method, spec.dataset, ipc, seed, config, spec.train_split)
                planned = tuple(Cell(method, ipc, seed, arch, proto, spec.num_models, dkey)
                                for arch in spec.archs for proto in protocols)
                yield SetPlan(method, ipc, seed, config, dkey, planned, refused)


def cells(spec: GridSpec) -> Iterator[Cell]:
    """Every evaluation cell of ``spec``, in :func:`plan_sets` order."""
    for planned in plan_sets(spec):
        yield from planned.cells


def cell_keys(spec: GridSpec) -> set[str]:
    """The ``cell_key`` of every cell of ``spec``: how a report picks a spec's own rows from a
    results directory that holds more."""
    return {cell.key for cell in cells(spec)}


def resolved_config(spec: GridSpec, method: str, ipc: int) -> Any:
    """``method``'s config for ``spec``'s dataset at ``ipc``, the grid's overrides applied."""
    config = default_config(method, spec.dataset, ipc)
    overrides = spec.overrides.get(method, {})
    if getattr(config, "no_reference", "") and "no_reference" not in overrides:
        return config  # refused (no published setting): planned without cells, overrides cannot rescue it
    return apply_overrides(config, overrides) if overrides else config


def eval_key(dkey: str, arch: str, protocol: EvalProtocol, num_models: int, seed: int | None = None,
             set_seed: int | None = None) -> str:
    """An evaluation cell's key: the set ``dkey`` trained on ``arch`` under ``protocol``, ``num_models`` models.

    A grid evaluates each set with the set's own seed, so its cells key on the set alone; an
    evaluation seeded otherwise (``dasm-bench evaluate --seed``: ``seed`` != ``set_seed``) is
    another cell and names its seed. The one cell-key scheme of every results row."""
    base = dkey if seed is None or seed == set_seed else f"{dkey}/s{seed}"
    return config_hash({"distill": base, "arch": arch, "protocol": dataclasses.asdict(protocol),
                        "num_models": num_models})


# ----------------------------------------------------------------------------- protocols

def method_protocol(spec: GridSpec, method: str, config: Any) -> EvalProtocol:
    """The protocol ``method``'s sets are evaluated under when the grid says "own": an explicit
    per-method or grid protocol as asked; otherwise the method's config's ``eval_protocol`` (else
    ``dc``) made the reference protocol on this dataset (DC on MNIST-like data: ``dc-aug``, see
    :func:`bench.protocols.reference_protocol`). The one resolver of a grid's "own" protocol."""
    asked = normalise_protocol(spec.method_protocols.get(method) or spec.protocol)
    name = asked if asked != OWN_PROTOCOL else reference_protocol(getattr(config, "eval_protocol", "dc"),
                                                                    spec.dataset)
    return get_protocol(name, spec.epochs)


def set_protocols(spec: GridSpec, method: str, config: Any) -> list[EvalProtocol]:
    """The protocols one set of ``method`` is evaluated under (without the random rule below)."""
    if not spec.protocols:
        return [method_protocol(spec, method, config)]
    chosen: dict[str, EvalProtocol] = {}
    for name in spec.protocols:
        proto = (method_protocol(spec, method, config) if normalise_protocol(name) == OWN_PROTOCOL
                 else get_protocol(name, spec.epochs))
        chosen.setdefault(proto.name, proto)
    return list(chosen.values())


def cell_protocols(spec: GridSpec, method: str, ipc: int, config: Any) -> list[EvalProtocol]:
    """The protocols of ``method``'s sets at ``ipc``: its own (and the grid's shared ones); with
    several protocols, the reference method (random) gets every protocol that appears, so each
    method has a same-protocol random row. One protocol per method (the default) is left exactly as it was."""
    if spec.protocols and method == REFERENCE_METHOD:
        return grid_protocols(spec, ipc)
    return set_protocols(spec, method, config)


def grid_protocols(spec: GridSpec, ipc: int) -> list[EvalProtocol]:
    """Every protocol some set of the grid is evaluated under at ``ipc`` (grid order)."""
    seen: dict[str, EvalProtocol] = {}
    for method in spec.methods:
        for proto in set_protocols(spec, method, resolved_config(spec, method, ipc)):
            seen.setdefault(proto.name, proto)
    return list(seen.values())
