"""Scheduling the runner's tasks: submit at most N at once, evaluations first, claim each cell first.

:func:`execute` runs :class:`Task` s (and the tasks their completions add) on an executor
(``bench.run.executors``); :class:`CellGate` claims each evaluation cell before it is submitted
(``bench.run.cell_claims``), so concurrent runners on one results directory evaluate each cell once;
:class:`Progress` is the progress bar (or log lines) and the executor's queue summary.

Example::

    failures = execute([Task(run_eval_job, job, "random ipc=1", priority=0)], InlineExecutor(), 1)
"""

from __future__ import annotations

import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from bench.errors import BenchError
from bench.run.cell_claims import CellClaims
from bench.run.executors import _Handle
from bench.store.results import ResultsTable


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
class Progress:
    """A tqdm bar over evaluation cells, or log lines when it is off."""

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


class CellGate:
    """Claims an evaluation task's cell before it is submitted (``bench.run.cell_claims``), so concurrent
    runners on one results directory evaluate each cell once: ``take`` answers "run" (claimed),
    "done" (its row exists) or "busy" (a live runner holds it; ask again later)."""

    def __init__(self, table: ResultsTable, claims: CellClaims, progress: "Progress",
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

