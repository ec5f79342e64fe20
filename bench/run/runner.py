"""The grid runner: distill each (method, dataset, IPC, seed) once, evaluate it on each architecture.

Cells are keyed by hashes of their resolved configs. Synthetic sets are stored once,
content-addressed under ``<out>/synthetic/<distill_key>.safetensors``, and reused by every
evaluation that needs them (adding an architecture never distills again). A results row is
written by this (parent) process as soon as its cell finishes, so a re-run does only what is
missing and a kill loses at most the cells in flight.

The pieces, by file: ``bench.spec.cells`` (a grid's cells, their keys and protocols), ``bench.run.jobs``
(what a worker runs), ``bench.run.scheduling`` (submitting, claiming, progress), ``bench.run.executors``
(where tasks run), ``bench.run.full_data_jobs`` (the full-data reference); this module plans a grid's
missing cells and runs them.

Work runs on an executor:

- ``local`` (default): ``workers`` processes (spawn context, ``threads`` torch threads each);
  ``workers=1`` runs everything in this process (no start-up cost, debuggable).
- ``submitit-local`` / ``slurm``: one submitit job per task (``SlurmOptions`` for partition,
  time, GPUs); the parent polls the jobs and writes the rows.

Two runners on one results directory never corrupt it and never do work twice: each row is its
own atomically written cell file (``bench.store.results``), each evaluation cell is claimed before it is
submitted (``bench.run.cell_claims``: a runner skips cells another live runner holds and comes back to them
at the end, taking over claims a killed runner left), and a per-set lock file makes the second
runner wait for (then reuse) a set the first is distilling instead of distilling it again.

Example::

    df = run_grid(GridSpec(methods=["random", "herding"], dataset="digits", ipcs=[1, 10], seeds=[0, 1]),
                  out_dir="results/demo", workers=2)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from bench.errors import BenchError
from bench.run.cell_claims import CellClaims
from bench.run.executors import SlurmOptions, default_workers, make_executor, prepare_slurm
from bench.run.full_data_jobs import FullDataJob, run_full_data_job
from bench.run.jobs import DistillJob, EvalJob, JobEnv, run_distill_job, run_eval_job
from bench.run.scheduling import CellGate, Progress, Task, execute
from bench.spec.cells import cells, plan_sets
from bench.spec.grid import GridSpec
from bench.store.full_data import write_full_data
from bench.store.results import ResultsTable
from bench.train.evaluation import resolve_device


def plan_tasks(spec: GridSpec, out: Path, table: ResultsTable, device: str, threads: int | None,
               progress: Progress, gpu_count: int = 0,
               on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[Task], int]:
    """The tasks of every missing cell; returns (tasks, evaluation cells already done)."""
    done = table.done_keys()
    out = out.resolve()  # jobs may run in another working directory (a Slurm node)
    tasks: list[Task] = []
    already = 0
    submitted = 0
    for planned in plan_sets(spec):
        method, ipc, seed = planned.method, planned.ipc, planned.seed
        if planned.refused:
            if seed == spec.seeds[0]:  # e.g. MTT above IPC 50 without a published MTT/DATM row: refused, not guessed
                progress.log(f"skipping {method} ipc={ipc}: {planned.refused}")
            continue
        # one set, every (architecture, protocol) cell it still lacks: never distilled twice
        todo = [cell for cell in planned.cells if cell.key not in done]
        already += len(planned.cells) - len(todo)
        if not todo:
            continue
        # several GPUs: spread distillations round-robin (their evaluations follow them)
        job_device = f"cuda:{submitted % gpu_count}" if gpu_count > 1 else device
        submitted += 1
        env = JobEnv(spec.dataset, job_device, spec.data_root, spec.download, threads, spec.train_split)
        dkey = planned.distill_key
        djob = DistillJob(method, ipc, seed, planned.config, dkey, str(out / "synthetic" / f"{dkey}.safetensors"), env)
        evals = [Task(run_eval_job, EvalJob(djob, cell.arch, cell.protocol, cell.num_models, cell.key, str(out)),
                      f"{method} ipc={ipc} seed={seed} {cell.arch} {cell.protocol.name}", priority=0,
                      on_done=_writer(table, progress, on_row), claim=cell.key)
                 for cell in todo]
        if Path(djob.syn_path).exists():
            tasks.extend(evals)  # stored already: straight to evaluation
        else:
            tasks.append(Task(run_distill_job, djob, f"distill {method} ipc={ipc} seed={seed}", priority=1,
                              on_done=lambda result, evals=evals: evals, dependents=len(evals)))
    return tasks, already


def _writer(table: ResultsTable, progress: Progress,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], list[Task]]:
    def write(row: dict[str, Any]) -> list[Task]:
        table.append([row])  # its own cell file, written atomically: O(1), a kill loses no other row
        progress.advance(1, f"{row['method']:>10} ipc={row['ipc']:<3} seed={row['seed']} {row['arch']}: "
                            f"{row['acc_last']:.1f}%")
        if on_row is not None:  # e.g. TensorBoard scalars (bench.run.tensorboard_log), after the row is safe
            on_row(row)
        return []

    return write


def run_grid(spec: GridSpec, out_dir: str | Path, device: str | torch.device = "auto", progress: bool = True,
             log: Callable[[str], None] = print, workers: int | None = 1, executor: str = "local",
             threads: int | None = None, slurm: SlurmOptions | None = None,
             full_data: FullDataJob | list[FullDataJob] | None = None,
             tensorboard: str | os.PathLike | None = None) -> pd.DataFrame:
    """Run every missing cell of ``spec``; returns the whole results table of ``out_dir``.

    ``tensorboard``: a directory for TensorBoard event files of each finished cell and its set's
    stored curves (:mod:`bench.run.tensorboard_log`; needs the optional tensorboard package).

    ``workers``: tasks at once (None: one per CPU core up to 8, one per GPU on CUDA, 64 submitit
    jobs); ``threads``: torch threads per worker (None: cores / workers, or ``cpus_per_job``).
    Failed cells are reported together at the end (a BenchError) after every other cell finished."""
    spec.validate()
    device_name = str(device)
    if executor == "local":
        device_name = str(resolve_device(device))  # fail early; submitit jobs resolve on their node
    if workers is None:  # for submitit: jobs in the queue at once
        workers = default_workers(device_name) if executor == "local" else 64
    if workers < 1:
        raise BenchError(f"workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:  # before any worker is spawned
        raise BenchError(f"threads must be >= 1, got {threads}")
    if executor != "local":  # defaults that fit the partition; a request that can never run fails here
        slurm = prepare_slurm(executor, slurm)
    if threads is None:  # a submitit job gets its own cores; local workers share this machine's
        threads = slurm.cpus_per_job if executor != "local" else max(1, (os.cpu_count() or 1) // workers)
    out = Path(out_dir)
    table = ResultsTable(out)
    gpu_count = torch.cuda.device_count() if device_name == "cuda" and executor == "local" else 0
    total = sum(1 for _ in cells(spec))
    bar = Progress(total, progress, f"{spec.dataset} grid", log)
    inline = executor == "local" and workers == 1  # this process: leave its torch threads alone
    scalars = None
    if tensorboard is not None:
        from bench.run.tensorboard_log import ScalarLog

        scalars = ScalarLog(tensorboard)
    tasks, already = plan_tasks(spec, out, table, device_name, None if inline else threads, bar,
                                0 if inline else gpu_count,
                                on_row=(lambda row: scalars.cell(row, out)) if scalars is not None else None)
    bar.advance(already)
    for job in [full_data] if isinstance(full_data, FullDataJob) else (full_data or []):
        tasks.append(Task(run_full_data_job, job, f"full data {job.arch} {job.protocol.name}", priority=1,
                          on_done=_full_data_writer(out)))
    failures: list[str] = []
    try:
        if tasks:
            failures = execute(tasks, make_executor(executor, workers, threads, out, slurm, bar.status),
                               workers, log, gate=CellGate(table, CellClaims(out), bar))
    finally:
        bar.close()
        if scalars is not None:
            scalars.close()
    df = table.consolidate()  # results.parquet / .csv from every cell (a killed run's too)
    if failures:
        raise BenchError(f"{len(failures)} task(s) failed, first: {failures[0]}; "
                         "finished cells are kept, rerun to retry the rest")
    return df


def _full_data_writer(out: Path) -> Callable[[dict[str, Any]], list[Task]]:
    def write(record: dict[str, Any]) -> list[Task]:
        write_full_data(out, record)  # atomically, other protocols' records kept (bench.store.full_data)
        return []

    return write
