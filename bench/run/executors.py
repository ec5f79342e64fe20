"""Where the runner's tasks run: this process, a local process pool, or submitit jobs (Slurm).

All executors share one small interface used by ``bench.run.scheduling.execute``: ``submit(fn, job)``
returns a handle, ``wait(handles)`` returns the finished ones, ``result(handle)`` returns the
value or raises the task's exception, ``shutdown()``.

- ``local``: ``InlineExecutor`` (``workers=1``) or ``PoolExecutor`` (spawned processes);
- ``submitit-local``: submitit's local executor (one process per task);
- ``slurm``: ``SlurmExecutor``, one submitit job per task. It fails fast: the request is checked
  against the partition before anything is submitted, and a job pending for a reason that can
  never clear stops the run with one line. Job states come from ``squeue`` and submitit's result
  files, never ``sacct`` (which fails on clusters without accounting), so the run stays quiet;
  a status line counts queued, running and done jobs.

Example::

    ex = make_executor("slurm", workers=8, threads=2, out=Path("results/x"),
                       slurm=SlurmOptions(partition="cpu", cpus_per_job=2))
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch

from bench.errors import BenchError
from bench.run import slurm as slurm_queue

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass
class SlurmOptions:
    """What each submitit job asks the scheduler for (``timeout_min`` is Slurm's --time).

    ``None`` for CPUs or time: a default that fits the partition (4 CPUs, 240 min, or less)."""

    partition: str | None = None
    timeout_min: int | None = None
    gpus_per_job: int = 0
    cpus_per_job: int | None = None
    mem_gb: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # further slurm_* parameters, e.g. {"account": "x"}
    poll_seconds: float = 5.0  # how often squeue is asked (one call for all jobs)


def prepare_slurm(executor: str, options: SlurmOptions | None) -> SlurmOptions:
    """``options`` with defaults filled in; for ``slurm``, checked against the partition first
    (a request no node can satisfy is a BenchError naming the flag, before anything is submitted)."""
    options = options or SlurmOptions()
    _require_submitit()
    if executor != "slurm":
        return replace(options, cpus_per_job=options.cpus_per_job or min(slurm_queue.DEFAULT_CPUS, os.cpu_count() or 1),
                       timeout_min=options.timeout_min or slurm_queue.DEFAULT_TIME_MIN)
    return _fit(options, slurm_queue.partition_offer(options.partition))


def _require_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise BenchError("the slurm / submitit-local executors need submitit: pip install submitit") from None
    return submitit


def _fit(options: SlurmOptions, offer: slurm_queue.PartitionOffer) -> SlurmOptions:
    fitted = slurm_queue.fit_request(_request(options), offer)
    return replace(options, cpus_per_job=fitted.cpus, timeout_min=fitted.time_min)


def _request(options: SlurmOptions) -> slurm_queue.SlurmRequest:
    return slurm_queue.SlurmRequest(options.cpus_per_job, options.mem_gb, options.gpus_per_job, options.timeout_min)


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


class _DropSacctWarnings(logging.Filter):
    """submitit warns on every failed ``sacct`` poll; without accounting that is every poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Bypassing sacct error" not in record.getMessage()


class SubmititExecutor:
    """One submitit job per task, on Slurm (``cluster="slurm"``) or as local processes ("local")."""

    def __init__(self, cluster: str, folder: Path, options: SlurmOptions, poll_seconds: float) -> None:
        submitit = _require_submitit()
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


class SlurmExecutor(SubmititExecutor):
    """Submitit jobs on Slurm, watched through ``squeue`` and submitit's result files.

    A job that left the queue without a result (``scancel``, time limit, node failure) fails its
    task with one line; a job pending for a reason that never clears cancels this run's pending
    jobs and raises a BenchError naming the request, the partition's limits and the flag to change.
    """

    GRACE_S = 10.0  # a finished job's result file may reach a shared filesystem a little late

    def __init__(self, folder: Path, options: SlurmOptions, status: Callable[[str], None] | None = None) -> None:
        self._offer = slurm_queue.partition_offer(options.partition)
        options = _fit(options, self._offer)
        self._options = options
        super().__init__("slurm", folder, options, options.poll_seconds)
        logging.getLogger("submitit").addFilter(_DropSacctWarnings())
        self._status = status
        self._last_status = ""
        self._last_poll = float("-inf")
        self._states: dict[str, slurm_queue.QueueState] = {}
        self._poll_error = ""
        self._ended_at: dict[str, float] = {}  # job id -> when it was first seen ended without a result
        self._jobs: dict[str, Any] = {}         # every job of this run still waited for
        self.finished = 0

    def submit(self, fn: Callable, job: Any) -> _Handle:
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's error first
                sub = self._executor.submit(fn, job)
        except Exception as exc:
            raise BenchError(f"sbatch refused the job: {slurm_queue._last_line(str(exc))}") from None
        self._jobs[sub.job_id] = sub
        return _Handle(sub)

    def wait(self, handles: list[_Handle]) -> list[_Handle]:
        while True:
            done = [h for h in handles if h.inner.paths.result_pickle.exists()]
            now = time.monotonic()
            if not done and now - self._last_poll >= self._poll and self._poll_queue(now):
                done = [h for h in handles if self._lost(h, now)]
            for h in done:
                self._jobs.pop(h.inner.job_id, None)
            self._report(len(done))
            if done:
                return done
            time.sleep(1.0)

    def _poll_queue(self, now: float) -> bool:
        """Read the queue (False if squeue failed: nothing is concluded from a failed poll)."""
        self._last_poll = now
        states = slurm_queue.queue_states()
        if isinstance(states, str):
            self._poll_error = states  # shown in the status line; the next poll tries again
            return False
        self._poll_error = ""
        self._states = {jid: states[jid] for jid in self._jobs if jid in states}
        known = {n.name for n in self._offer.nodes}
        fatal = {jid: s for jid, s in self._states.items()
                 if s.state == "PENDING" and slurm_queue.never_clears(s.reason, known)}
        if fatal:
            jid, state = next(iter(fatal.items()))
            pending = [j for j, s in self._states.items() if s.state == "PENDING"]
            slurm_queue.cancel(pending)
            problems = slurm_queue.request_problems(_request(self._options), self._offer)
            change = "; ".join(problems) or f"change {slurm_queue.reason_flags(state.reason)}"
            raise BenchError(f"Slurm job {jid} can never start (pending: {state.reason}): it asks for "
                             f"{_request(self._options).describe()} on {self._offer.describe()}; {change} "
                             f"(cancelled {len(pending)} pending job(s))")
        return True

    def _lost(self, handle: _Handle, now: float) -> bool:
        """Whether the job ended (or left the queue) without a result file, for longer than the grace."""
        jid = handle.inner.job_id
        state = self._states.get(jid)
        if state is not None and state.state not in slurm_queue.TERMINAL:
            return False
        first = self._ended_at.setdefault(jid, now)
        if now - first < self.GRACE_S:
            return False
        name = state.state if state is not None else "GONE"
        hint = slurm_queue.HINTS.get(name, "it left the queue")
        handle.error = BenchError(f"Slurm job {jid} ended {name} without a result: {hint}; "
                                  f"log {handle.inner.paths.stderr}")
        return True

    def _report(self, newly_done: int) -> None:
        self.finished += newly_done
        # a job submitted since the last poll counts as queued; one that ended but is not collected yet as running
        states = [self._states.get(jid) for jid in self._jobs]
        queued = sum(s is None or s.state in ("PENDING", "CONFIGURING", "REQUEUED") for s in states)
        running = len(states) - queued
        reasons = Counter(s.reason for s in states if s is not None and s.state == "PENDING" and s.reason != "None")
        why = f" ({reasons.most_common(1)[0][0]})" if reasons else ""
        line = f"slurm jobs: {queued} queued{why}, {running} running, {self.finished} done"
        if self._poll_error:
            line += f"; {self._poll_error}"
        if line != self._last_status and self._status is not None:
            self._status(line)
        self._last_status = line

    def result(self, handle: _Handle) -> Any:  # type: ignore[override]
        if handle.error is not None:
            raise handle.error
        return handle.inner.result()  # the result file exists: submitit reads it without sacct


def make_executor(executor: str, workers: int, threads: int, out: Path,
                  slurm: SlurmOptions | None = None, status: Callable[[str], None] | None = None) -> Any:
    """The executor named ``executor``; ``status`` receives the Slurm queue summary when it changes."""
    if executor == "local":
        return InlineExecutor() if workers <= 1 else PoolExecutor(workers, threads)
    if executor == "slurm":
        return SlurmExecutor(out / "submitit", slurm or SlurmOptions(), status)
    if executor == "submitit-local":
        return SubmititExecutor("local", out / "submitit", prepare_slurm(executor, slurm), poll_seconds=0.5)
    raise BenchError(f"unknown executor {executor!r}; use {', '.join(EXECUTORS)}")


def default_workers(device: str) -> int:
    """One worker per GPU on CUDA, else one per CPU core up to 8 (small CPU models scale better
    across processes than across threads; each worker holds its own copy of the dataset)."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return max(1, torch.cuda.device_count()) if device == "cuda" else 1
    return max(1, min(8, os.cpu_count() or 1))
