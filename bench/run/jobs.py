"""The runner's jobs: what a worker process (local, submitit or Slurm) runs for one task.

Every job is a small picklable record that names its data instead of holding it (a worker loads
the dataset itself, once per process) and returns a small record the parent writes:

- :class:`DistillJob` -> :func:`run_distill_job`: make a set unless it is stored;
- :class:`EvalJob` -> :func:`run_eval_job`: evaluate one cell, return its results row;
- ``bench.run.full_data_jobs.FullDataJob``: the full-data reference (it uses :class:`JobEnv` too).

Sets are content-addressed files; :func:`obtain_synthetic` makes each once, under a per-set lock,
so two runners (or workers) that need the same set never distill it twice.

Example::

    env = JobEnv("digits", "cpu")
    job = DistillJob("random", 1, 0, default_config("random", "digits", 1), dkey, "out/synthetic/k.safetensors", env)
    run_distill_job(job)       # {"seconds": ..., "cached": False}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from bench.data.datasets import Dataset, load_dataset
from bench.errors import BenchError
from bench.files import file_lock
from bench.methods.registry import DistillRequest, distill
from bench.protocols import EvalProtocol
from bench.store.results import results_row
from bench.store.synthetic import SyntheticSet
from bench.train.allocator import tune_allocator
from bench.train.evaluation import evaluate_synthetic, resolve_device


@dataclass(frozen=True)
class JobEnv:
    """The data a job loads and where it runs (``threads``: torch threads of its worker)."""

    dataset: str
    device: str
    data_root: str | None = None
    download: bool = False
    threads: int | None = None
    train_split: str = "full"

    def start(self) -> tuple[Dataset, torch.device]:
        """This worker's torch threads and C allocator set, then (data, device)."""
        tune_allocator()
        if self.threads:
            torch.set_num_threads(self.threads)
        device = resolve_device(self.device)
        return load_dataset(self.dataset, self.data_root, self.download, self.train_split), device


@dataclass(frozen=True)
class DistillJob:
    """Everything a worker needs to make (or load) one synthetic set."""

    method: str
    ipc: int
    seed: int
    config: Any
    dkey: str
    syn_path: str
    env: JobEnv

    def obtain(self, data: Dataset, device: torch.device) -> tuple[SyntheticSet, bool]:
        return obtain_synthetic(Path(self.syn_path), lambda: distill(
            self.method, DistillRequest(data, self.ipc, self.seed, device, progress=False), self.config))


@dataclass(frozen=True)
class EvalJob:
    """One evaluation cell: a stored set trained on ``arch`` under ``protocol``."""

    distill: DistillJob
    arch: str
    protocol: EvalProtocol
    num_models: int
    ekey: str
    results_dir: str


def run_distill_job(job: DistillJob) -> dict[str, Any]:
    """Make the set unless it is stored; returns {"seconds", "cached"}."""
    data, device = job.env.start()
    syn, cached = job.obtain(data, device)
    return {"seconds": float(syn.metadata.get("seconds", 0.0)), "cached": cached}


def run_eval_job(job: EvalJob) -> dict[str, Any]:
    """Evaluate one cell; returns its results row (the parent writes it)."""
    d = job.distill
    data, device = d.env.start()
    # normally the set is already stored; if it vanished or is damaged it is remade under the lock
    syn, _ = d.obtain(data, device)
    res = evaluate_synthetic(syn, data, job.arch, job.protocol, job.num_models, d.seed, device)
    row = results_row(syn, res, job.ekey, str(Path(d.syn_path).relative_to(job.results_dir)),
                      job.num_models, d.dkey, d.env.train_split)
    # the cell as the grid names it (what its key encodes), whatever a loader calls its data
    return {**row, "method": d.method, "dataset": d.env.dataset, "ipc": d.ipc, "seed": d.seed}


def obtain_synthetic(path: Path, make: Callable[[], SyntheticSet]) -> tuple[SyntheticSet, bool]:
    """Load the content-addressed set at ``path`` or make and save it; returns (set, was_cached).

    A per-set lock file (``<dir>/.locks/<name>.lock``) serialises makers: a second runner (or
    worker) asking for the same set waits, then loads what the first one saved."""
    with file_lock(path.parent / ".locks" / f"{path.stem}.lock"):
        # temporaries of this set can only be left by a maker that died holding this lock
        for stale in path.parent.glob(f".{path.stem}.*.tmp"):
            stale.unlink(missing_ok=True)
        if path.exists():
            try:
                return SyntheticSet.load(path), True
            except BenchError:
                pass  # a damaged file (e.g. a disk error) is regenerated, never trusted
        syn = make()
        syn.save(path)
        return syn, False
