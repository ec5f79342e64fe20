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

Two runners on one results directory never corrupt it: the table is locked and written
atomically, and a per-set lock file makes the second runner wait for (then reuse) a set the
first is distilling instead of distilling it again.

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
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

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

EXECUTORS = ("local", "submitit-local", "slurm")


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
        for name in self.method_protocols.values():
            get_protocol(name, self.epochs)
        for name in self.protocols:
            if name != OWN:
                get_protocol(name, self.epochs)


@dataclass
class SlurmOptions:
    """What each submitit job asks the scheduler for (``timeout_min`` is Slurm's --time)."""

    partition: str | None = None
    timeout_min: int = 240
    gpus_per_job: int = 0
    cpus_per_job: int = 4
    mem_gb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # further slurm_* parameters, e.g. {"account": "x"}


def method_protocol(spec: GridSpec, method: str, config: Any) -> EvalProtocol:
    name = spec.method_protocols.get(method) or (
        spec.protocol if spec.protocol != "default" else getattr(config, "eval_protocol", "dc"))
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
                dkey = distill_key(method, spec.dataset, ipc, seed, config)
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
    return apply_overrides(config, spec.overrides.get(method, {})) if spec.overrides.get(method) else config


def distill_key(method: str, dataset: str, ipc: int, seed: int, config: Any) -> str:
    return config_hash({"method": method, "dataset": dataset, "ipc": ipc, "seed": seed,
                        "config": config_dict(config)})


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
    key: str | None = None   # the sets' protocol this reference serves (default: protocol.name)


def _prepare(device: str, threads: int | None) -> torch.device:
    if threads:
        torch.set_num_threads(threads)
    return resolve_device(device)


def run_distill_job(job: DistillJob) -> dict[str, Any]:
    """Make the set unless it is stored; returns {"seconds", "cached"}."""
    device = _prepare(job.device, job.threads)
    data = load_dataset(job.dataset, job.data_root, job.download)
    syn, cached = obtain_synthetic(Path(job.syn_path), lambda: distill(
        job.method, DistillRequest(data, job.ipc, job.seed, device, progress=False), job.config))
    return {"seconds": float(syn.metadata.get("seconds", 0.0)), "cached": cached}


def run_eval_job(job: EvalJob) -> dict[str, Any]:
    """Evaluate one cell; returns its results row (the parent writes it)."""
    d = job.distill
    device = _prepare(d.device, d.threads)
    data = load_dataset(d.dataset, d.data_root, d.download)
    # normally the set is already stored; if it vanished or is damaged it is remade under the lock
    syn, _ = obtain_synthetic(Path(d.syn_path), lambda: distill(
        d.method, DistillRequest(data, d.ipc, d.seed, device, progress=False), d.config))
    res = evaluate_synthetic(syn, data, job.arch, job.protocol, job.num_models, d.seed, device)
    return {
        "cell_key": job.ekey, "method": d.method, "dataset": d.dataset, "ipc": d.ipc, "seed": d.seed,
        "arch": job.arch, "protocol": job.protocol.name, "num_models": job.num_models,
        "acc_last": res.last_mean, "acc_last_std": res.last_std,
        "acc_best": res.best_mean, "acc_best_std": res.best_std,
        "distill_seconds": float(syn.metadata.get("seconds", float("nan"))), "eval_seconds": res.seconds,
        "code_version": code_version(), "config_hash": d.dkey,
        "synthetic_path": str(Path(d.syn_path).relative_to(job.results_dir)),
    }


def run_full_data_job(job: FullDataJob) -> dict[str, Any]:
    """Train ``arch`` on the whole training split (cached under ``<results>/cache``)."""
    from bench.evaluation import full_data_accuracy

    device = _prepare(job.device, job.threads)
    data = load_dataset(job.dataset, job.data_root, job.download)
    res = full_data_accuracy(data, job.arch, job.protocol, device=device,
                             cache_dir=Path(job.results_dir) / "cache")
    return {"dataset": job.dataset, "arch": job.arch, "protocol": job.protocol.name, "acc": res.last_mean,
            "acc_best": res.best_mean, "source": "computed", "key": job.key or job.protocol.name}


# ----------------------------------------------------------------------------- executors

class _Handle:
    """A submitted task: a Future, a submitit Job or an inline result."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.value: Any = None
        self.error: BaseException | None = None


class InlineExecutor:
    """Runs each task in this process when waited for (``workers=1``)."""

    name = "inline"

    def __init__(self) -> None:
        self._queue: deque[tuple[_Handle, Callable, Any]] = deque()

    def submit(self, fn: Callable, job: Any) -> _Handle:
        handle = _Handle()
        self._queue.append((handle, fn, job))
        return handle

    def wait(self, handles: list[_Handle]) -> list[_Handle]:
        handle, fn, job = self._queue.popleft()
        try:
            handle.value = fn(job)
        except Exception as exc:  # reported by the scheduler, the grid goes on
            handle.error = exc
        return [handle]

    @staticmethod
    def result(handle: _Handle) -> Any:
        if handle.error is not None:
            raise handle.error
        return handle.value

    def shutdown(self) -> None:
        self._queue.clear()


def _worker_init(threads: int, parent_pid: int) -> None:
    torch.set_num_threads(threads)

    # A SIGKILLed parent cannot stop its pool: each worker leaves by itself once it is orphaned,
    # instead of blocking forever on a queue nobody feeds (and holding a set's lock meanwhile).
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="parent-watchdog").start()


class PoolExecutor:
    """``workers`` spawned processes with ``threads`` torch threads each."""

    name = "local"

    def __init__(self, workers: int, threads: int) -> None:
        import concurrent.futures
        import multiprocessing

        self._futures = concurrent.futures
        # spawn, not fork: forking a process that already ran torch (threads, CUDA) can deadlock
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init, initargs=(threads, os.getpid()))

    def submit(self, fn: Callable, job: Any) -> _Handle:
        return _Handle(self._pool.submit(fn, job))

    def wait(self, handles: list[_Handle]) -> list[_Handle]:
        by_future = {h.inner: h for h in handles}
        done, _ = self._futures.wait(list(by_future), return_when=self._futures.FIRST_COMPLETED)
        return [by_future[f] for f in done]

    @staticmethod
    def result(handle: _Handle) -> Any:
        return handle.inner.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class SubmititExecutor:
    """One submitit job per task, on Slurm (``cluster="slurm"``) or as local processes ("local")."""

    def __init__(self, cluster: str, folder: Path, options: SlurmOptions, poll_seconds: float) -> None:
        try:
            import submitit
        except ImportError:
            raise BenchError("the slurm / submitit-local executors need submitit: pip install submitit") from None
        self.name = "slurm" if cluster == "slurm" else "submitit-local"
        self._executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        params: dict[str, Any] = {"timeout_min": options.timeout_min, "cpus_per_task": options.cpus_per_job,
                                  "gpus_per_node": options.gpus_per_job, "name": "dasm-bench"}
        if options.mem_gb is not None:
            params["mem_gb"] = options.mem_gb
        if options.partition:
            params["slurm_partition"] = options.partition
        params.update({f"slurm_{k}": v for k, v in options.extra.items()})
        try:
            self._executor.update_parameters(**params)
        except (NameError, AssertionError, ValueError) as exc:
            raise BenchError(f"bad submitit parameters: {str(exc).splitlines()[0]}") from None
        self._poll = poll_seconds

    def submit(self, fn: Callable, job: Any) -> _Handle:
        return _Handle(self._executor.submit(fn, job))

    def wait(self, handles: list[_Handle]) -> list[_Handle]:
        while True:
            done = [h for h in handles if h.inner.done()]
            if done:
                return done
            time.sleep(self._poll)

    @staticmethod
    def result(handle: _Handle) -> Any:
        return handle.inner.result()

    def shutdown(self) -> None:
        pass  # submitted jobs keep running (on Slurm that is the point); a rerun skips what they finish


def make_executor(executor: str, workers: int, threads: int, out: Path,
                  slurm: SlurmOptions | None = None) -> Any:
    if executor == "local":
        return InlineExecutor() if workers <= 1 else PoolExecutor(workers, threads)
    if executor in ("slurm", "submitit-local"):
        cluster = "slurm" if executor == "slurm" else "local"
        return SubmititExecutor(cluster, out / "submitit", slurm or SlurmOptions(),
                                poll_seconds=30.0 if cluster == "slurm" else 0.5)
    raise BenchError(f"unknown executor {executor!r}; use {', '.join(EXECUTORS)}")


def default_workers(device: str) -> int:
    """One worker per GPU on CUDA, else one per CPU core up to 8 (small CPU models scale better
    across processes than across threads; each worker holds its own copy of the dataset)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return max(1, torch.cuda.device_count()) if device == "cuda" else 1
    return max(1, min(8, os.cpu_count() or 1))


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


def execute(tasks: list[Task], executor: Any, max_in_flight: int,
            log: Callable[[str], None] = print) -> list[str]:
    """Run tasks (and the tasks their completions add) with at most ``max_in_flight`` submitted at
    once; returns one line per failure. Ctrl-C stops submitting and cancels queued local work."""
    ready: list[deque[Task]] = [deque(), deque()]
    for t in tasks:
        ready[t.priority].append(t)
    in_flight: dict[_Handle, Task] = {}
    failures: list[str] = []
    try:
        while in_flight or any(ready):
            while len(in_flight) < max_in_flight and any(ready):
                task = (ready[0] or ready[1]).popleft()
                in_flight[executor.submit(task.fn, task.job)] = task
            for handle in executor.wait(list(in_flight)):
                task = in_flight.pop(handle)
                try:
                    result = executor.result(handle)
                except Exception as exc:  # one failed cell must not stop a long grid
                    lost = f" ({task.dependents} evaluation cells skipped)" if task.dependents else ""
                    failures.append(f"{task.label}: {one_line(exc)}{lost}")
                    log(f"FAILED {failures[-1]}")
                    if type(exc).__name__ == "BrokenProcessPool":
                        raise BenchError(f"a worker process died (out of memory?) while running {task.label}; "
                                         "finished cells are kept, rerun (with fewer --workers) to continue") from None
                    continue
                for follow in task.on_done(result):
                    ready[follow.priority].append(follow)
    finally:
        executor.shutdown()
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

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def plan_tasks(spec: GridSpec, out: Path, table: ResultsTable, device: str, threads: int | None,
               progress: _Progress, gpu_count: int = 0) -> tuple[list[Task], int]:
    """The tasks of every missing cell; returns (tasks, evaluation cells already done)."""
    done = table.done_keys()
    out = out.resolve()  # jobs may run in another working directory (a Slurm node)
    tasks: list[Task] = []
    already = 0
    submitted = 0
    for method in spec.methods:
        for ipc in spec.ipcs:
            config = resolved_config(spec, method, ipc)
            protocols = cell_protocols(spec, method, ipc, config)
            for seed in spec.seeds:
                dkey = distill_key(method, spec.dataset, ipc, seed, config)
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
                                  spec.data_root, spec.download, threads)
                evals = [Task(run_eval_job, EvalJob(djob, a, p, spec.num_models,
                                                    eval_key(dkey, a, p, spec.num_models), str(out)),
                              f"{method} ipc={ipc} seed={seed} {a} {p.name}", priority=0,
                              on_done=_writer(table, progress))
                         for a, p in todo]
                if Path(djob.syn_path).exists():
                    tasks.extend(evals)  # stored already: straight to evaluation
                else:
                    tasks.append(Task(run_distill_job, djob, f"distill {method} ipc={ipc} seed={seed}", priority=1,
                                      on_done=lambda result, evals=evals: evals, dependents=len(evals)))
    return tasks, already


def _writer(table: ResultsTable, progress: _Progress) -> Callable[[dict[str, Any]], list[Task]]:
    def write(row: dict[str, Any]) -> list[Task]:
        table.append([row])  # locked + atomic: a kill never leaves a half-written table
        progress.advance(1, f"{row['method']:>10} ipc={row['ipc']:<3} seed={row['seed']} {row['arch']}: "
                            f"{row['acc_last']:.1f}% (best {row['acc_best']:.1f}%)")
        return []

    return write


def run_grid(spec: GridSpec, out_dir: str | Path, device: str | torch.device = "auto", progress: bool = True,
             log: Callable[[str], None] = print, workers: int | None = 1, executor: str = "local",
             threads: int | None = None, slurm: SlurmOptions | None = None,
             full_data: FullDataJob | list[FullDataJob] | None = None) -> pd.DataFrame:
    """Run every missing cell of ``spec``; returns the whole results table of ``out_dir``.

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
    if threads is None:  # a submitit job gets its own cores; local workers share this machine's
        threads = ((slurm or SlurmOptions()).cpus_per_job if executor != "local"
                   else max(1, (os.cpu_count() or 1) // workers))
    out = Path(out_dir)
    table = ResultsTable(out)
    gpu_count = torch.cuda.device_count() if device_name == "cuda" and executor == "local" else 0
    total = sum(1 for _ in planned_cells(spec))
    bar = _Progress(total, progress, f"{spec.dataset} grid", log)
    inline = executor == "local" and workers == 1  # this process: leave its torch threads alone
    tasks, already = plan_tasks(spec, out, table, device_name, None if inline else threads, bar,
                                0 if inline else gpu_count)
    bar.advance(already)
    for job in [full_data] if isinstance(full_data, FullDataJob) else (full_data or []):
        tasks.append(Task(run_full_data_job, job, f"full data {job.arch} {job.protocol.name}", priority=1,
                          on_done=lambda result: _write_full_data(out, result)))
    failures: list[str] = []
    try:
        if tasks:
            failures = execute(tasks, make_executor(executor, workers, threads, out, slurm), workers, log)
    finally:
        bar.close()
    if failures:
        raise BenchError(f"{len(failures)} task(s) failed, first: {failures[0]}; "
                         "finished cells are kept, rerun to retry the rest")
    return table.load()


def _write_full_data(out: Path, record: dict[str, Any]) -> list[Task]:
    write_full_data(out, record)
    return []


def write_full_data(out: Path, record: dict[str, Any]) -> Path:
    """Add a full-data record to ``<out>/full_data.json`` (one per protocol; bench.full_data)."""
    from bench.full_data import write_full_data as write

    return write(out, record)
