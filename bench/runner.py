"""The grid runner: distill each (method, dataset, IPC, seed) once, evaluate it on each architecture.

Cells are keyed by hashes of their resolved configs. Synthetic sets are stored once,
content-addressed under ``<out>/synthetic/<distill_key>.safetensors``, and reused by every
evaluation that needs them; a results row is written as soon as its cell finishes, so a re-run
does only what is missing and a kill loses at most the cell in flight.

Example::

    df = run_grid(GridSpec(methods=["random", "herding"], dataset="digits", ipcs=[1, 10], seeds=[0, 1]),
                  out_dir="results/demo")
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from bench.data import load_dataset
from bench.errors import BenchError
from bench.evaluation import EvalProtocol, evaluate_synthetic, get_protocol, resolve_device
from bench.models import model_name_ok
from bench.registry import (DistillRequest, apply_overrides, config_dict, config_hash, default_config, distill,
                            get_method)
from bench.results import ResultsTable
from bench.synthetic import SyntheticSet
from bench.version import code_version


@dataclass
class GridSpec:
    """Methods x IPCs x seeds on one dataset, evaluated on ``archs``."""

    methods: list[str]
    dataset: str
    ipcs: list[int]
    seeds: list[int] = field(default_factory=lambda: [0])
    archs: list[str] = field(default_factory=lambda: ["convnet"])
    protocol: str = "default"          # "default": each method's own (config.eval_protocol, else "dc")
    epochs: int | None = None          # evaluation budget override (CPU runs)
    num_models: int = 5
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method config overrides
    data_root: str | None = None
    download: bool = False

    def validate(self) -> None:
        for m in self.methods:
            get_method(m)
        data = load_dataset(self.dataset, self.data_root, self.download)
        for ipc in self.ipcs:
            data.check_ipc(ipc)
        for arch in self.archs:
            model_name_ok(arch)
        if self.num_models < 1:
            raise BenchError(f"num_models must be >= 1, got {self.num_models}")
        if self.protocol != "default":
            get_protocol(self.protocol, self.epochs)


def method_protocol(spec: GridSpec, method: str, config: Any) -> EvalProtocol:
    name = spec.protocol if spec.protocol != "default" else getattr(config, "eval_protocol", "dc")
    return get_protocol(name, spec.epochs)


def resolved_config(spec: GridSpec, method: str, ipc: int) -> Any:
    config = default_config(method, spec.dataset, ipc)
    return apply_overrides(config, spec.overrides.get(method, {})) if spec.overrides.get(method) else config


def distill_key(method: str, dataset: str, ipc: int, seed: int, config: Any) -> str:
    return config_hash({"method": method, "dataset": dataset, "ipc": ipc, "seed": seed,
                        "config": config_dict(config)})


def eval_key(dkey: str, arch: str, protocol: EvalProtocol, num_models: int) -> str:
    return config_hash({"distill": dkey, "arch": arch, "protocol": dataclasses.asdict(protocol),
                        "num_models": num_models})


def obtain_synthetic(path: Path, make: Callable[[], SyntheticSet]) -> tuple[SyntheticSet, bool]:
    """Load the content-addressed set at ``path`` or make and save it; returns (set, was_cached)."""
    if path.exists():
        try:
            return SyntheticSet.load(path), True
        except BenchError:
            pass  # a damaged file (e.g. a disk error) is regenerated, never trusted
    syn = make()
    syn.save(path)
    return syn, False


def run_grid(spec: GridSpec, out_dir: str | Path, device: str | torch.device = "auto", progress: bool = True,
             log: Callable[[str], None] = print) -> pd.DataFrame:
    """Run every missing cell of ``spec``; returns the whole results table of ``out_dir``."""
    spec.validate()
    device = resolve_device(device)
    out = Path(out_dir)
    table = ResultsTable(out)
    data = load_dataset(spec.dataset, spec.data_root, spec.download)
    cells = [(m, ipc, s) for m in spec.methods for ipc in spec.ipcs for s in spec.seeds]
    done = table.done_keys()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells) * len(spec.archs), desc=f"{spec.dataset} grid", unit="cell")
    for method, ipc, seed in cells:
        config = resolved_config(spec, method, ipc)
        protocol = method_protocol(spec, method, config)
        dkey = distill_key(method, spec.dataset, ipc, seed, config)
        todo = [a for a in spec.archs if eval_key(dkey, a, protocol, spec.num_models) not in done]
        if not todo:
            if bar is not None:
                bar.update(len(spec.archs))
            continue
        if bar is not None:
            bar.set_postfix_str(f"{method} ipc={ipc} seed={seed}")
        syn_path = out / "synthetic" / f"{dkey}.safetensors"
        t0 = time.perf_counter()
        syn, cached = obtain_synthetic(
            syn_path, lambda: distill(method, DistillRequest(data, ipc, seed, device, progress=False), config))
        distill_seconds = float(syn.metadata.get("seconds", time.perf_counter() - t0))
        for arch in spec.archs:
            ekey = eval_key(dkey, arch, protocol, spec.num_models)
            if ekey in done:
                if bar is not None:
                    bar.update(1)
                continue
            res = evaluate_synthetic(syn, data, arch, protocol, spec.num_models, seed, device)
            row = {
                "cell_key": ekey, "method": method, "dataset": spec.dataset, "ipc": ipc, "seed": seed,
                "arch": arch, "protocol": protocol.name, "num_models": spec.num_models,
                "acc_last": res.last_mean, "acc_last_std": res.last_std,
                "acc_best": res.best_mean, "acc_best_std": res.best_std,
                "distill_seconds": distill_seconds, "eval_seconds": res.seconds,
                "code_version": code_version(), "config_hash": dkey,
                "synthetic_path": str(syn_path.relative_to(out)),
            }
            table.append([row])
            done.add(ekey)
            if bar is not None:
                bar.update(1)
            else:
                log(f"{method:>10} ipc={ipc:<3} seed={seed} {arch}: {res.last_mean:.1f}% (best {res.best_mean:.1f}%)")
    if bar is not None:
        bar.close()
    return table.load()
