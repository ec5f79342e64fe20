"""The grid runner: distill each (method, dataset, IPC, seed) once, evaluate it on each architecture.

Cells are keyed by hashes of their resolved configs. Synthetic sets are stored once,
content-addressed under ``<out>/synthetic/<distill_key>.safetensors``, and reused by every
evaluation that needs them (adding an architecture never distills again). A results row is
written by this (parent) process as soon as its cell finishes, so a re-run does only what is
missing and a kill loses at most the cells in flight.

Work runs on an executor:

- ``local`` (default): ``workers`` processes (spawn context, ``threads`` torch threads each);
  ``workers=1`` runs everything in this process (no start-up cost, debuggable).
- ``submitit-local`` / ``slurm``: one submitit job per task (``SlurmOptions`` for partition,
  time, GPUs); the parent polls the jobs and writes the rows.

Two runners on one results directory never corrupt it and never do work twice: each row is its
own atomically written cell file (``bench.results``), each evaluation cell is claimed before it is
submitted (``bench.claims``: a runner skips cells another live runner holds and comes back to them
at the end, taking over claims a killed runner left), and a per-set lock file makes the second
runner wait for (then reuse) a set the first is distilling instead of distilling it again.

Example::

    df = run_grid(GridSpec(methods=["random", "herding"], dataset="digits", ipcs=[1, 10], seeds=[0, 1]),
                  out_dir="results/demo", workers=2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
import torch

from bench.claims import CellClaims
from bench.data import load_dataset
from bench.errors import BenchError
from bench.evaluation import EvalProtocol, evaluate_synthetic, get_protocol, reference_protocol, resolve_device
# the executors live in bench.executors; re-exported here for callers that import them from the runner
from bench.executors import (EXECUTORS, InlineExecutor, PoolExecutor, SlurmOptions,  # noqa: F401
                             SubmititExecutor, _Handle, default_workers, make_executor, prepare_slurm)
from bench.models import model_name_ok
from bench.registry import (DistillRequest, apply_overrides, config_dict, config_hash, default_config, distill,
                            get_method, split_payload)
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
        if self.protocol != "default":
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
        spec.protocol if spec.protocol != "default"
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


def full_data_protocols(spec: GridSpec, epochs: int) -> list[tuple[str, EvalProtocol]]:
    """(key, protocol) of each full-data reference a grid needs. One protocol per method (the
    default): the historical reference, ``dc-nodsa`` at ``epochs`` (shared with ``dasm-bench grid
    --full-data-epochs``). Several protocols: one reference per protocol that appears, trained
    under that protocol at ``epochs``, keyed by the sets' protocol name; ``mtt`` (a set's learned
    learning rate) has no full-data meaning and is left out."""
    if not spec.protocols:
        proto = get_protocol("dc-nodsa", epochs)
        return [(proto.name, proto)]
    seen: dict[str, EvalProtocol] = {}
    for ipc in spec.ipcs:
        for proto in grid_protocols(spec, ipc):
            if not proto.lr_from_set:
                seen.setdefault(proto.name, proto.with_epochs(epochs))
    return list(seen.items())


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


def eval_key(dkey: str, arch: str, protocol: EvalProtocol, num_models: int) -> str:
    return config_hash({"distill": dkey, "arch": arch, "protocol": dataclasses.asdict(protocol),
                        "num_models": num_models})


def obtain_synthetic(path: Path, make: Callable[[], SyntheticSet]) -> tuple[SyntheticSet, bool]:
    """Load the content-addressed set at ``path`` or make and save it; returns (set, was_cached).

    A per-set lock file serialises makers: a second runner (or worker) asking for the same set
    waits, then loads what the first one saved."""
    with distill_lock(path):
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


@contextlib.contextmanager
def distill_lock(syn_path: Path) -> Iterator[None]:
    """An exclusive fcntl lock on ``<dir>/.locks/<name>.lock`` (released if the holder dies)."""
    lock_dir = syn_path.parent / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{syn_path.stem}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- jobs (run in workers)

@dataclass(frozen=True)
class DistillJob:
    """Everything a worker needs to make (or load) one synthetic set; picklable."""

    method: str
    dataset: str
    ipc: int
    seed: int
    config: Any
    dkey: str
    syn_path: str
    device: str
    data_root: str | None = None
    download: bool = False
    threads: int | None = None
    train_split: str = "full"


@dataclass(frozen=True)
class EvalJob:
    """One evaluation cell: a stored set trained on ``arch`` under ``protocol``."""

    distill: DistillJob
    arch: str
    protocol: EvalProtocol
    num_models: int
    ekey: str
    results_dir: str


@dataclass(frozen=True)
class FullDataJob:
    """The full-data reference accuracy (the dashed line), cached as JSON."""

    dataset: str
    arch: str
    protocol: EvalProtocol
    device: str
    results_dir: str
    data_root: str | None = None
    download: bool = False
    threads: int | None = None
    train_split: str = "full"
    key: str | None = None   # the sets' protocol this reference serves (default: protocol.name)


def _prepare(device: str, threads: int | None) -> torch.device:
    if threads:
        torch.set_num_threads(threads)
    return resolve_device(device)


def run_distill_job(job: DistillJob) -> dict[str, Any]:
    """Make the set unless it is stored; returns {"seconds", "cached"}."""
    device = _prepare(job.device, job.threads)
    data = load_dataset(job.dataset, job.data_root, job.download, job.train_split)
    syn, cached = obtain_synthetic(Path(job.syn_path), lambda: distill(
        job.method, DistillRequest(data, job.ipc, job.seed, device, progress=False), job.config))
    return {"seconds": float(syn.metadata.get("seconds", 0.0)), "cached": cached}


def run_eval_job(job: EvalJob) -> dict[str, Any]:
    """Evaluate one cell; returns its results row (the parent writes it)."""
    d = job.distill
    device = _prepare(d.device, d.threads)
    data = load_dataset(d.dataset, d.data_root, d.download, d.train_split)
    # normally the set is already stored; if it vanished or is damaged it is remade under the lock
    syn, _ = obtain_synthetic(Path(d.syn_path), lambda: distill(
        d.method, DistillRequest(data, d.ipc, d.seed, device, progress=False), d.config))
    res = evaluate_synthetic(syn, data, job.arch, job.protocol, job.num_models, d.seed, device)
    return {
        "cell_key": job.ekey, "method": d.method, "dataset": d.dataset, "ipc": d.ipc, "seed": d.seed,
        "arch": job.arch, "protocol": job.protocol.name, "num_models": job.num_models,
        "acc_last": res.last_mean, "acc_last_std": res.last_std,
        # no "best": a max over test evaluations would select on the test split (bench.evaluation)
        "acc_best": float("nan"), "acc_best_std": float("nan"),
        "distill_seconds": float(syn.metadata.get("seconds", float("nan"))), "eval_seconds": res.seconds,
        "code_version": code_version(), "config_hash": d.dkey,
        "synthetic_path": str(Path(d.syn_path).relative_to(job.results_dir)),
        # the split the set was distilled from (a method may hold part of it out, e.g. DASM's val)
        "train_split": str(syn.metadata.get("train_split", d.train_split)),
    }


def run_full_data_job(job: FullDataJob) -> dict[str, Any]:
    """Train ``arch`` on the whole training split (cached under ``<results>/cache``)."""
    from bench.evaluation import full_data_accuracy

    device = _prepare(job.device, job.threads)
    data = load_dataset(job.dataset, job.data_root, job.download, job.train_split)
    res = full_data_accuracy(data, job.arch, job.protocol, device=device,
                             cache_dir=Path(job.results_dir) / "cache")
    return {"dataset": job.dataset, "arch": job.arch, "protocol": job.protocol.name, "acc": res.last_mean,
            "train_split": job.train_split, "source": "computed", "key": job.key or job.protocol.name}


# ----------------------------------------------------------------------------- scheduling

@dataclass
class Task:
    """A job plus what to do with its result; ``priority`` 0 runs before 1 (evaluations first,
    so rows appear early and a set's evaluations follow its distillation)."""

    fn: Callable[[Any], Any]
    job: Any
    label: str
    priority: int
    on_done: Callable[[Any], list["Task"]] = lambda result: []
    dependents: int = 0    # evaluation cells lost if this task fails
    claim: str | None = None  # an evaluation cell's key: claimed before submitting (see CellGate)


def execute(tasks: list[Task], executor: Any, max_in_flight: int,
            log: Callable[[str], None] = print, gate: "CellGate | None" = None) -> list[str]:
    """Run tasks (and the tasks their completions add) with at most ``max_in_flight`` submitted at
    once; returns one line per failure. Ctrl-C stops submitting and cancels queued local work.

    ``gate``: claims each task's cell before submitting it; a cell another runner holds is set
    aside and retried every ``gate.poll_seconds`` until it is written (or its claim goes stale)."""
    ready: list[deque[Task]] = [deque(), deque()]
    for t in tasks:
        ready[t.priority].append(t)
    in_flight: dict[_Handle, Task] = {}
    failures: list[str] = []
    deferred: list[Task] = []
    retry_at = 0.0
    try:
        while in_flight or any(ready) or deferred:
            if deferred and time.monotonic() >= retry_at:
                ready[0].extend(deferred)
                deferred.clear()
            while len(in_flight) < max_in_flight and any(ready):
                task = (ready[0] or ready[1]).popleft()
                state = gate.take(task) if gate is not None else "run"
                if state == "busy":
                    if not deferred:
                        retry_at = time.monotonic() + gate.poll_seconds
                    deferred.append(task)
                elif state == "run":
                    in_flight[executor.submit(task.fn, task.job)] = task
            if not in_flight:
                if deferred:  # only cells other runners hold are left: wait for them
                    time.sleep(max(0.0, retry_at - time.monotonic()))
                continue
            for handle in executor.wait(list(in_flight)):
                task = in_flight.pop(handle)
                try:
                    result = executor.result(handle)
                except Exception as exc:  # one failed cell must not stop a long grid
                    if gate is not None:
                        gate.release(task)  # unwritten: another runner (or a rerun) may try it
                    lost = f" ({task.dependents} evaluation cells skipped)" if task.dependents else ""
                    failures.append(f"{task.label}: {one_line(exc)}{lost}")
                    log(f"FAILED {failures[-1]}")
                    if type(exc).__name__ == "BrokenProcessPool":
                        raise BenchError(f"a worker process died (out of memory?) while running {task.label}; "
                                         "finished cells are kept, rerun (with fewer --workers) to continue") from None
                    continue
                try:
                    follows = task.on_done(result)  # writes the cell's row ...
                finally:
                    if gate is not None:
                        gate.release(task)          # ... before its claim goes
                for follow in follows:
                    ready[follow.priority].append(follow)
    finally:
        executor.shutdown()
        if gate is not None:
            gate.close()
    return failures


def one_line(exc: BaseException) -> str:
    """``Type: message`` in one line; for a submitit failure, the remote exception's own line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    raised = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)(:|$)", ln)]
    if raised:
        return raised[-1]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


@dataclass
class _Progress:
    total: int
    enabled: bool
    desc: str
    log: Callable[[str], None]

    def __post_init__(self) -> None:
        self.bar = None
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="cell")

    def advance(self, n: int = 1, line: str | None = None) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if line:
                self.bar.set_postfix_str(line[:60])
        elif line:
            self.log(line)

    def status(self, line: str) -> None:
        """The executor's queue summary (Slurm: queued / running / done jobs), shown when it changes."""
        if self.bar is not None:
            self.bar.set_description_str(f"{self.desc} [{line}]")
        else:
            self.log(line)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def plan_tasks(spec: GridSpec, out: Path, table: ResultsTable, device: str, threads: int | None,
               progress: _Progress, gpu_count: int = 0,
               on_row: Callable[[dict[str, Any]], None] | None = None) -> tuple[list[Task], int]:
    """The tasks of every missing cell; returns (tasks, evaluation cells already done)."""
    done = table.done_keys()
    out = out.resolve()  # jobs may run in another working directory (a Slurm node)
    tasks: list[Task] = []
    already = 0
    submitted = 0
    for method in spec.methods:
        for ipc in spec.ipcs:
            config = resolved_config(spec, method, ipc)
            if getattr(config, "no_reference", ""):
                # e.g. MTT above IPC 50 without a published MTT/DATM row: refused, not guessed
                progress.log(f"skipping {method} ipc={ipc}: {config.no_reference}")
                continue
            protocols = cell_protocols(spec, method, ipc, config)
            for seed in spec.seeds:
                dkey = distill_key(method, spec.dataset, ipc, seed, config, spec.train_split)
                # one set, every (architecture, protocol) cell it still lacks: never distilled twice
                todo = [(a, p) for a in spec.archs for p in protocols
                        if eval_key(dkey, a, p, spec.num_models) not in done]
                already += len(spec.archs) * len(protocols) - len(todo)
                if not todo:
                    continue
                # several GPUs: spread distillations round-robin (their evaluations follow them)
                job_device = f"cuda:{submitted % gpu_count}" if gpu_count > 1 else device
                submitted += 1
                djob = DistillJob(method, spec.dataset, ipc, seed, config, dkey,
                                  str(out / "synthetic" / f"{dkey}.safetensors"), job_device,
                                  spec.data_root, spec.download, threads, spec.train_split)
                evals = [Task(run_eval_job, EvalJob(djob, a, p, spec.num_models,
                                                    eval_key(dkey, a, p, spec.num_models), str(out)),
                              f"{method} ipc={ipc} seed={seed} {a} {p.name}", priority=0,
                              on_done=_writer(table, progress, on_row), claim=eval_key(dkey, a, p, spec.num_models))
                         for a, p in todo]
                if Path(djob.syn_path).exists():
                    tasks.extend(evals)  # stored already: straight to evaluation
                else:
                    tasks.append(Task(run_distill_job, djob, f"distill {method} ipc={ipc} seed={seed}", priority=1,
                                      on_done=lambda result, evals=evals: evals, dependents=len(evals)))
    return tasks, already


class CellGate:
    """Claims an evaluation task's cell before it is submitted (``bench.claims``), so concurrent
    runners on one results directory evaluate each cell once: ``take`` answers "run" (claimed),
    "done" (its row exists) or "busy" (a live runner holds it; ask again later)."""

    def __init__(self, table: ResultsTable, claims: CellClaims, progress: "_Progress",
                 poll_seconds: float = 2.0) -> None:
        self.table, self.claims, self.progress, self.poll_seconds = table, claims, progress, poll_seconds

    def take(self, task: Task) -> str:
        if task.claim is None:
            return "run"
        if not self.table.has(task.claim):
            if not self.claims.acquire(task.claim):
                return "busy"
            if not self.table.has(task.claim):  # rows are written before claims go, so this is final
                return "run"
            self.claims.release(task.claim)  # its holder finished between the check and the claim
        self.progress.advance(1, f"{task.label}: written by another runner")
        return "done"

    def release(self, task: Task) -> None:
        if task.claim is not None:
            self.claims.release(task.claim)

    def close(self) -> None:
        self.claims.close()


def _writer(table: ResultsTable, progress: _Progress,
            on_row: Callable[[dict[str, Any]], None] | None = None) -> Callable[[dict[str, Any]], list[Task]]:
    def write(row: dict[str, Any]) -> list[Task]:
        table.append([row])  # its own cell file, written atomically: O(1), a kill loses no other row
        progress.advance(1, f"{row['method']:>10} ipc={row['ipc']:<3} seed={row['seed']} {row['arch']}: "
                            f"{row['acc_last']:.1f}%")
        if on_row is not None:  # e.g. TensorBoard scalars (bench.tensorboard_log), after the row is safe
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
    stored curves (:mod:`bench.tensorboard_log`; needs the optional tensorboard package).

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
    total = sum(1 for _ in planned_cells(spec))
    bar = _Progress(total, progress, f"{spec.dataset} grid", log)
    inline = executor == "local" and workers == 1  # this process: leave its torch threads alone
    scalars = None
    if tensorboard is not None:
        from bench.tensorboard_log import ScalarLog

        scalars = ScalarLog(tensorboard)
    tasks, already = plan_tasks(spec, out, table, device_name, None if inline else threads, bar,
                                0 if inline else gpu_count,
                                on_row=(lambda row: scalars.cell(row, out)) if scalars is not None else None)
    bar.advance(already)
    for job in [full_data] if isinstance(full_data, FullDataJob) else (full_data or []):
        tasks.append(Task(run_full_data_job, job, f"full data {job.arch} {job.protocol.name}", priority=1,
                          on_done=lambda result: _write_full_data(out, result)))
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


def _write_full_data(out: Path, record: dict[str, Any]) -> list[Task]:
    write_full_data(out, record)
    return []


def write_full_data(out: Path, record: dict[str, Any]) -> Path:
    """Add a full-data record to ``<out>/full_data.json`` (one per protocol; bench.full_data)."""
    from bench.full_data import write_full_data as write

    return write(out, record)
