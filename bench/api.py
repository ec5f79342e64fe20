"""The library entry points behind ``from bench import distill, evaluate, ...`` (see bench/__init__.py).

Thin, keyword-friendly forms of the harness's own functions, so a Python session does in a few
lines what the CLI does: distill a set, evaluate it, collect rows in a results table.

Example::

    from bench import distill, evaluate, load_dataset, results_row, ResultsTable
    data = load_dataset("digits")
    syn = distill("herding", data, ipc=5)
    res = evaluate(syn, data, epochs=50, num_models=2)
    ResultsTable("runs/mine").append([results_row(syn, res)])
"""

from __future__ import annotations

from typing import Any

import torch

from bench.data.datasets import Dataset, load_dataset
from bench.methods.registry import DistillRequest, own_protocol
from bench.methods.registry import distill as _registry_distill
from bench.protocols import get_protocol
from bench.store.synthetic import SyntheticSet
from bench.train.evaluation import EvalResult, evaluate_synthetic, resolve_device


def distill(method: str, data: Dataset | DistillRequest, ipc: int | None = None, seed: int = 0,
            device: str | torch.device = "cpu", progress: bool = False, config: Any | None = None,
            **overrides: Any) -> SyntheticSet:
    """Distill ``ipc`` images per class of ``data`` with a registered method; keyword arguments
    override config fields (as ``--set key=value`` does). A :class:`DistillRequest` is passed through.

    Example::

        syn = distill("dm", load_dataset("digits"), ipc=10, seed=1, iterations=50)
    """
    if isinstance(data, DistillRequest):
        request = data
    else:
        if ipc is None:
            from bench.errors import BenchError

            raise BenchError("distill needs ipc (images per class)")
        data.check_ipc(ipc)
        request = DistillRequest(data, ipc, seed, resolve_device(device), progress=progress)
    return _registry_distill(method, request, config=config, overrides=overrides or None)


def evaluate(syn: SyntheticSet, data: Dataset | None = None, arch: str = "convnet", protocol: str | None = None,
             epochs: int | None = None, num_models: int = 5, seed: int = 0,
             device: str | torch.device = "cpu", progress: bool = False) -> EvalResult:
    """Train ``num_models`` fresh ``arch`` models on the set and test them on the real test split.

    ``protocol`` defaults to the set's own (``metadata["eval_protocol"]``, else ``dc``); ``epochs``
    shortens it (recorded in the protocol's name, e.g. ``dc@50ep``).

    Example::

        res = evaluate(syn, arch="resnet18", epochs=100)
        print(res.last_mean, res.last_std)
    """
    data = data if data is not None else load_dataset(syn.metadata["dataset"])
    proto = get_protocol(protocol or own_protocol(syn.metadata, data.name), epochs)
    return evaluate_synthetic(syn, data, arch, proto, num_models, seed, resolve_device(device), progress=progress)


def results_row(syn: SyntheticSet, result: EvalResult) -> dict[str, Any]:
    """One row of the results table (the columns `dasm-bench evaluate --results` writes), for a
    set evaluated with its own seed: the grid's cell key (bench.spec.grid.eval_key) and row builder
    (bench.store.results.results_row)."""
    from bench.spec.cells import eval_key
    from bench.store.results import results_row as build_row

    key = eval_key(syn.metadata.get("config_hash", "unknown"), result.arch, get_protocol(result.protocol),
                   len(result.acc_last))
    return build_row(syn, result, key)
