"""The budget ladder as a spec: each method at a ladder of budgets (x1, x2, x4, ... of its configured
one) on one dataset, and the cells each rung has.

Rung ``r`` multiplies the method's budget fields (``MethodSpec.budget_fields``, declared where the
method registers: ``iterations`` for DC/DSA/DM/IDC, MTT's ``iterations`` and
``expansion_iterations``). DASM and its ablations (configs with ``base``/``base_overrides``) have
their base's budget: the rung scales the base's fields of every segment through ``base_overrides``.
Coresets have no budget and are refused. Every rung distils from scratch (its config, hence its
set's key, differs from every other rung's). Running it is :mod:`bench.run.budget`; its tables,
the rung chosen on validation and its figure are :mod:`bench.report.budget`.

Example::

    spec = BudgetSpec(methods=["dm", "idc"], dataset="digits", ipcs=[10], seeds=[0, 1, 2], rungs=[1, 2, 4])
    rung_overrides(spec, "dm", 10, 4)   # {"iterations": 800}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from bench.errors import BenchError
from bench.methods.registry import apply_overrides, default_config, get_method
from bench.spec.cells import cells
from bench.spec.grid import GridSpec
from bench.vocabulary import OWN_PROTOCOL

ARCH = "convnet"


@dataclass
class BudgetSpec:
    """Methods x IPCs x seeds on one dataset, each at every rung of ``rungs``.

    ``overrides``: per-method config fields applied before scaling (the x1 budget itself may be set,
    e.g. ``{"dm": {"iterations": 50}}``); ``protocol`` OWN_PROTOCOL ("default") = each method's own."""

    methods: list[str]
    dataset: str
    ipcs: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    rungs: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    protocol: str = OWN_PROTOCOL
    epochs: int | None = None
    num_models: int = 5
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_hours: float | None = None
    data_root: str | None = None
    download: bool = False
    train_split: str = "train-val"  # the choice needs a held-out validation split (module docstring)

    def validate(self) -> None:
        if not self.methods or not self.ipcs or not self.seeds or not self.rungs:
            raise BenchError("budget needs at least one method, IPC, seed and rung")
        bad = [r for r in self.rungs if not isinstance(r, int) or r <= 0]
        if bad:
            raise BenchError(f"rungs must be positive integers (budget multipliers), got {bad[0]}")
        if self.max_hours is not None and not self.max_hours > 0:
            raise BenchError(f"--max-hours must be positive, got {self.max_hours}")
        unknown = sorted(set(self.overrides) - set(self.methods))
        if unknown:
            raise BenchError(f"override for {unknown[0]!r}, which is not among the methods {','.join(self.methods)}")
        for method in self.methods:
            get_method(method)
            budget_fields_of(self, method)  # a method without a budget is refused before anything runs
        for ipc in self.ipcs:
            grid = self.grid(max(self.rungs), ipc)
            grid.validate()  # dataset, IPC, protocol
            for method in self.methods:
                rung_config(self, method, ipc, max(self.rungs))

    def grid(self, rung: int, ipc: int) -> GridSpec:
        """The grid of one rung at one IPC (a method's x1 budget may depend on IPC): every
        method's config scaled by ``rung``."""
        overrides = {m: rung_overrides(self, m, ipc, rung) for m in self.methods}
        return GridSpec(methods=list(self.methods), dataset=self.dataset, ipcs=[ipc], seeds=list(self.seeds),
                        archs=[ARCH], protocol=self.protocol, epochs=self.epochs, num_models=self.num_models,
                        overrides=overrides, data_root=self.data_root, download=self.download,
                        train_split=self.train_split)


# ----------------------------------------------------------------------------- the ladder

def _base_config(spec: BudgetSpec, method: str, ipc: int) -> Any:
    config = default_config(method, spec.dataset, ipc)
    user = spec.overrides.get(method)
    return apply_overrides(config, user) if user else config


def _scaled(config: Any, fields: Sequence[str], rung: int, who: str) -> dict[str, int]:
    out = {}
    for name in fields:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BenchError(f"budget field {who}.{name} must be an integer, got {value!r}")
        out[name] = value * rung
    return out


def budget_fields(method: str) -> tuple[str, ...]:
    """The method's budget fields; a method without any is a one-line error."""
    fields = get_method(method).budget_fields
    if not fields:
        raise BenchError(f"method {method!r} has no distillation budget to ladder "
                         "(no budget_fields at registration; coresets have none)")
    return fields


def budget_fields_of(spec: BudgetSpec, method: str) -> tuple[str, ...]:
    """The fields a rung scales: the method's own, or (DASM variants) its base's."""
    config = _base_config(spec, method, spec.ipcs[0])
    if _has_base(config):
        get_method(config.base)
        return budget_fields(config.base)
    return budget_fields(method)


def _has_base(config: Any) -> bool:
    return hasattr(config, "base") and hasattr(config, "base_overrides")


def rung_overrides(spec: BudgetSpec, method: str, ipc: int, rung: int) -> dict[str, Any]:
    """Config overrides of ``method`` at ``rung``: the user's overrides plus its budget fields x rung.

    Example::

        rung_overrides(BudgetSpec(["dm"], "digits", [10]), "dm", 10, 4)   # {"iterations": 800}
    """
    config = _base_config(spec, method, ipc)
    user = dict(spec.overrides.get(method, {}))
    if _has_base(config):  # DASM and its ablations
        fields = budget_fields(config.base)
        schedule = getattr(config, "resolved_schedule", None)
        sizes = sorted(set(schedule(ipc).sizes)) if schedule else [ipc]
        # every segment's base config at its own size, then scaled; one dict serves all segments,
        # so their x1 budgets must agree (they do for the shipped defaults)
        per_size = [_scaled(apply_overrides(default_config(config.base, spec.dataset, n), config.base_overrides)
                            if config.base_overrides else default_config(config.base, spec.dataset, n),
                            fields, rung, config.base) for n in sizes]
        if any(p != per_size[0] for p in per_size):
            raise BenchError(f"{method}'s segments ({'+'.join(map(str, sizes))} images per class) have different "
                             f"{config.base} budgets; fix them with base_overrides")
        return {**user, "base_overrides": {**config.base_overrides, **per_size[0]}}
    return {**user, **_scaled(config, budget_fields(method), rung, method)}


def rung_config(spec: BudgetSpec, method: str, ipc: int, rung: int) -> Any:
    """The resolved config ``method`` distils with at ``rung``."""
    return apply_overrides(default_config(method, spec.dataset, ipc), rung_overrides(spec, method, ipc, rung))


def budget_label(spec: BudgetSpec, method: str, ipc: int, rung: int) -> str:
    """``iterations=800`` (or ``base iterations=12`` for DASM): what the rung sets."""
    over = rung_overrides(spec, method, ipc, rung)
    fields = budget_fields_of(spec, method)
    if _has_base(_base_config(spec, method, ipc)):
        return "base " + " ".join(f"{k}={over['base_overrides'][k]}" for k in fields)
    return " ".join(f"{k}={over[k]}" for k in fields)


def cell_keys(spec: BudgetSpec, method: str, ipc: int, rung: int) -> dict[int, str]:
    """seed -> the results cell key of (method, ipc, rung, seed) on the ConvNet: the rung's grid's cells."""
    return {cell.seed: cell.key for cell in cells(spec.grid(rung, ipc)) if cell.method == method}
