"""Computing the full-data references (the dashed line of a table): the jobs a grid still needs, and
the training of a model on the whole training split, cached. Reading and writing the records is
:mod:`bench.store.full_data` (the table readers need that without torch).

Example::

    jobs = full_data_jobs(spec, "results/demo", "convnet", "cpu", epochs=100)
    records = [run_full_data_job(job) for job in jobs]
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BenchError
from bench.files import read_regular, write_atomically
from bench.methods.registry import config_hash
from bench.paths import safe_slug
from bench.store.full_data import read_full_data, write_full_data

if TYPE_CHECKING:
    import torch

    from bench.data.core import Dataset
    from bench.protocols import EvalProtocol
    from bench.run.jobs import JobEnv
    from bench.spec.grid import GridSpec
    from bench.train.evaluation import EvalResult


@dataclass(frozen=True)
class FullDataJob:
    """The full-data reference accuracy (the dashed line) of ``arch`` under ``protocol``."""

    arch: str
    protocol: EvalProtocol
    results_dir: str
    env: JobEnv
    key: str | None = None   # the sets' protocol this reference serves (default: protocol.name)


def run_full_data_job(job: FullDataJob) -> dict[str, Any]:
    """Train ``arch`` on the whole training split (cached under ``<results>/cache``); returns the record."""
    data, device = job.env.start()
    res = full_data_accuracy(data, job.arch, job.protocol, device=device, cache_dir=Path(job.results_dir) / "cache")
    return {"dataset": job.env.dataset, "arch": job.arch, "protocol": job.protocol.name, "acc": res.last_mean,
            "train_split": job.env.train_split, "source": "computed", "key": job.key or job.protocol.name}


def full_data_protocols(spec: GridSpec, epochs: int) -> list[tuple[str, EvalProtocol]]:
    """(key, protocol) of each full-data reference a grid needs. One protocol per method (the
    default): the historical reference, ``dc-nodsa`` at ``epochs``. Several protocols: one
    reference per protocol that appears, trained under that protocol at ``epochs``, keyed by the
    sets' protocol name; ``mtt`` (a set's learned learning rate) has no full-data meaning and is
    left out."""
    from bench.protocols import get_protocol
    from bench.spec.cells import grid_protocols

    if not spec.protocols:
        proto = get_protocol("dc-nodsa", epochs)
        return [(proto.name, proto)]
    seen: dict[str, EvalProtocol] = {}
    for ipc in spec.ipcs:
        for proto in grid_protocols(spec, ipc):
            if not proto.lr_from_set:
                seen.setdefault(proto.name, proto.with_epochs(epochs))
    return list(seen.items())


def full_data_jobs(spec: GridSpec, out: str | Path, arch: str, device: str, epochs: int | None = None,
                   published: float | None = None) -> list[FullDataJob]:
    """The full-data references ``spec`` still needs in ``out``: a ``published`` accuracy (%) is
    recorded at once (no job); with ``epochs``, a job per protocol whose record is missing or was
    trained otherwise (another dataset, architecture, protocol or split). The one place that
    decides this for ``dasm-bench run`` (a spec's ``[evaluation]``) and ``dasm-bench grid``.

    Example::

        jobs = full_data_jobs(spec, "results/demo", "convnet", "cpu", epochs=100)
        run_grid(spec, "results/demo", full_data=jobs)
    """
    from bench.run.jobs import JobEnv

    target = Path(out)
    if published is not None:
        write_full_data(target, {"dataset": spec.dataset, "arch": arch, "protocol": "published",
                                 "acc": published, "source": "published"})
        return []
    if epochs is None:
        return []
    records = read_full_data(target)
    # the table's own pool: a train-val grid's full-data line trains on train-val too (one pool per table)
    env = JobEnv(spec.dataset, device, spec.data_root, spec.download, train_split=spec.train_split)
    jobs = []
    for key, protocol in full_data_protocols(spec, epochs):
        record = records.get(key)
        # a record without a split predates it and was trained on the train-val split
        if record is None or (record.get("dataset"), record.get("arch"), record.get("protocol"),
                              record.get("train_split", "train-val")) != (spec.dataset, arch, protocol.name,
                                                                          spec.train_split):
            jobs.append(FullDataJob(arch, protocol, str(target.resolve()), env, key=key))
    return jobs

def full_data_accuracy(data: Dataset, arch: str = "convnet", protocol: EvalProtocol | None = None,
                       num_models: int = 1, seed: int = 0, device: torch.device | str = "cpu",
                       cache_dir: str | os.PathLike = "results/cache") -> EvalResult:
    """Accuracy of ``arch`` trained on the whole training split: computed once, cached as JSON.

    The cache key names the training split and hashes the whole protocol, so a changed schedule
    or split never reuses an old number."""
    from bench.protocols import get_protocol
    from bench.train.evaluation import EvalResult, evaluate_training_set

    protocol = protocol or get_protocol("dc")
    split = getattr(data, "train_split", "train-val")
    key = "__".join([safe_slug(data.name), split, safe_slug(arch), safe_slug(protocol.name),
                     config_hash(dataclasses.asdict(protocol))[:8], f"m{num_models}", f"s{seed}"])
    path = Path(cache_dir) / "full_data" / f"{key}.json"
    if path.exists():
        try:
            d = json.loads(read_regular(path, "full-data cache entry"))
            return EvalResult(d["arch"], d["protocol"], d["acc_last"], [], d["seconds"], {"cached": True})
        except (ValueError, KeyError, TypeError, RecursionError, BenchError):
            pass  # a damaged cache entry is recomputed
    res = evaluate_training_set(data.train.images, data.train.labels, data, arch, protocol, num_models, seed,
                                device)
    # a unique temp name per writer: concurrent jobs computing the same cell never share one
    write_atomically(path, json.dumps(dataclasses.asdict(res), indent=2).encode())
    return res
