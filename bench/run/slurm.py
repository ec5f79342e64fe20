"""What a Slurm partition offers, and what the queue says about our jobs (no accounting needed).

Used by the ``slurm`` executor (``bench.run.executors``) to fail fast instead of hanging:

- before submitting, ``fit_request`` compares the request (CPUs, memory, GPUs, time) with the
  partition's nodes and limits (``scontrol show partition/node``), fills in defaults that fit, and
  turns a request no node can satisfy into one ``BenchError`` naming the flag to change;
- after submitting, ``queue_states`` reads ``squeue`` (not ``sacct``: many small clusters run
  without accounting, where ``sacct`` only fails) and ``never_clears`` recognises pending
  reasons that cannot clear by waiting (``PartitionConfig``, per-job QOS limits, nodes that do not
  exist, ...).

Example::

    offer = partition_offer(None)                 # the default partition
    request = fit_request(SlurmRequest(cpus=None, mem_gb=None, gpus=0, time_min=None), offer)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace

from bench.errors import BenchError

DEFAULT_CPUS = 4
DEFAULT_TIME_MIN = 240
# pending reasons that no amount of waiting clears: the request breaks a fixed limit
FATAL_REASONS = {"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints",
                 "InvalidAccount", "InvalidQOS", "AccountNotAllowed", "QOSNotAllowed", "PartitionNotAvail",
                 "DependencyNeverSatisfied"}
FATAL_REASON_PATTERN = re.compile(r"^(QOS|Assoc)\w*Per(Job|Node)\w*$|^(QOS|Assoc)MaxWallDuration")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
            "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
HINTS = {"CANCELLED": "cancelled (scancel or an administrator)", "TIMEOUT": "it ran past --time; raise --time",
         "OUT_OF_MEMORY": "it ran out of memory; raise --mem-gb", "NODE_FAIL": "its node failed",
         "PREEMPTED": "it was preempted", "BOOT_FAIL": "its node failed to boot",
         "DEADLINE": "it missed its deadline", "FAILED": "the job script failed"}


@dataclass(frozen=True)
class SlurmRequest:
    """One job's request; ``None`` = let ``fit_request`` choose a default that fits."""

    cpus: int | None
    mem_gb: float | None
    gpus: int
    time_min: int | None

    def describe(self) -> str:
        mem = f", {self.mem_gb:g} GB" if self.mem_gb else ""
        return f"{self.cpus} CPUs{mem}, {self.gpus} GPUs, {self.time_min} min"


@dataclass(frozen=True)
class NodeOffer:
    name: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass(frozen=True)
class PartitionOffer:
    """A partition's nodes (capped by its per-node limits) and its time limit (None: unlimited)."""

    name: str
    nodes: tuple[NodeOffer, ...]
    max_time_min: int | None

    @property
    def max_cpus(self) -> int:
        return max((n.cpus for n in self.nodes), default=0)

    @property
    def max_mem_mb(self) -> int:
        return max((n.mem_mb for n in self.nodes), default=0)

    @property
    def max_gpus(self) -> int:
        return max((n.gpus for n in self.nodes), default=0)

    def describe(self) -> str:
        limit = "no time limit" if self.max_time_min is None else f"time limit {self.max_time_min} min"
        return (f"partition {self.name!r}: {len(self.nodes)} node(s), at most {self.max_cpus} CPUs, "
                f"{self.max_mem_mb / 1024:.0f} GB, {self.max_gpus} GPUs per node, {limit}")


def _scontrol(*args: str) -> str:
    if shutil.which("scontrol") is None:
        raise BenchError("the slurm executor needs Slurm's commands (sbatch, squeue, scontrol) on PATH")
    try:
        proc = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise BenchError("Slurm did not answer `scontrol` within 60 s; is slurmctld up?") from None
    if proc.returncode != 0:
        raise BenchError(f"scontrol {' '.join(args)}: {_last_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


def _fields(line: str) -> dict[str, str]:
    # `scontrol -o` prints Key=Value pairs; values we read never contain spaces
    return dict(re.findall(r"(\w+)=(\S*)", line))


def parse_minutes(text: str) -> int | None:
    """Slurm's time format (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in minutes; None if unlimited."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        h, m, s = parts
    elif len(parts) == 3:
        h, m, s = parts
    elif len(parts) == 2:
        h, m, s = 0, parts[0], parts[1]
    else:
        h, m, s = 0, parts[0], 0
    return (int(days or 0) * 24 + h) * 60 + m + (1 if s else 0)


def gpu_count(gres: str) -> int:
    """GPUs in a node's ``Gres`` field, e.g. ``gpu:a100:4(S:0-1),gpu:v100:1`` -> 5."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres or ""):
        item = item.split("(")[0]
        if item.startswith("gpu"):
            last = item.split(":")[-1]
            total += int(last) if last.isdigit() else 1
    return total


def _limit(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def partition_offer(partition: str | None) -> PartitionOffer:
    """The named (or default) partition as ``scontrol`` describes it; a BenchError if it does not exist."""
    parts = [_fields(ln) for ln in _scontrol("-o", "show", "partition").splitlines() if ln.strip()]
    names = [p.get("PartitionName", "?") for p in parts]
    if partition is None:
        chosen = next((p for p in parts if p.get("Default") == "YES"), None)
        if chosen is None:
            raise BenchError(f"Slurm has no default partition; name one with --partition "
                             f"(partitions: {', '.join(names) or 'none'})")
    else:
        chosen = next((p for p in parts if p.get("PartitionName") == partition), None)
        if chosen is None:
            raise BenchError(f"Slurm partition {partition!r} does not exist; change --partition "
                             f"(partitions: {', '.join(names) or 'none'})")
    name = chosen["PartitionName"]
    max_cpus, max_mem = _limit(chosen.get("MaxCPUsPerNode")), _limit(chosen.get("MaxMemPerNode"))
    nodes = []
    for line in _scontrol("-o", "show", "node").splitlines():
        f = _fields(line)
        if name not in f.get("Partitions", "").split(","):
            continue
        cpus = int(f.get("CPUEfctv") or f.get("CPUTot") or 0)  # CPUEfctv: less the specialised cores
        mem = int(f.get("RealMemory") or 0)
        nodes.append(NodeOffer(f.get("NodeName", "?"), min(cpus, max_cpus or cpus), min(mem, max_mem or mem),
                               gpu_count(f.get("Gres", ""))))
    return PartitionOffer(name, tuple(nodes), parse_minutes(chosen.get("MaxTime", "UNLIMITED")))


def fit_request(request: SlurmRequest, offer: PartitionOffer) -> SlurmRequest:
    """``request`` with defaults that fit ``offer``; a BenchError naming the flag when it cannot fit."""
    for flag, value, least in (("--cpus-per-job", request.cpus, 1), ("--gpus-per-job", request.gpus, 0),
                               ("--time", request.time_min, 1), ("--mem-gb", request.mem_gb, 1)):
        if value is not None and value < least:
            raise BenchError(f"{flag} must be >= {least}, got {value:g}")
    gpu_nodes = [n for n in offer.nodes if n.gpus >= request.gpus] or list(offer.nodes)
    cpus = request.cpus if request.cpus is not None else max(1, min(DEFAULT_CPUS, max((n.cpus for n in gpu_nodes),
                                                                                      default=1)))
    time_min = request.time_min if request.time_min is not None else (
        DEFAULT_TIME_MIN if offer.max_time_min is None else min(DEFAULT_TIME_MIN, offer.max_time_min))
    fitted = replace(request, cpus=cpus, time_min=time_min)
    problems = request_problems(fitted, offer)
    if problems:
        raise BenchError(f"Slurm jobs asking for {fitted.describe()} can never run on {offer.describe()}: "
                         f"{'; '.join(problems)}")
    return fitted


def request_problems(request: SlurmRequest, offer: PartitionOffer) -> list[str]:
    """What in ``request`` no node of ``offer`` can give, each with the flag to change (empty: it fits)."""
    if not offer.nodes:
        return ["the partition has no nodes; change --partition"]
    problems = []
    if request.cpus is not None and request.cpus > offer.max_cpus:
        problems.append(f"--cpus-per-job {request.cpus} > {offer.max_cpus}; "
                        f"use --cpus-per-job {offer.max_cpus} or less")
    if request.mem_gb and request.mem_gb * 1024 > offer.max_mem_mb:
        problems.append(f"--mem-gb {request.mem_gb:g} > {offer.max_mem_mb // 1024}; lower --mem-gb")
    if request.gpus > offer.max_gpus:
        problems.append(f"--gpus-per-job {request.gpus} > {offer.max_gpus}; lower --gpus-per-job "
                        "or pick a GPU partition with --partition")
    if request.time_min is not None and offer.max_time_min is not None and request.time_min > offer.max_time_min:
        problems.append(f"--time {request.time_min} > the partition's limit of {offer.max_time_min} min; "
                        f"use --time {offer.max_time_min} or less")
    if not problems and not any(
            (request.cpus or 1) <= n.cpus and (request.mem_gb or 0) * 1024 <= n.mem_mb and request.gpus <= n.gpus
            for n in offer.nodes):
        problems.append("no single node has all of it; lower --cpus-per-job, --mem-gb or --gpus-per-job")
    return problems


@dataclass(frozen=True)
class QueueState:
    state: str     # PENDING, RUNNING, COMPLETED, CANCELLED, ...
    reason: str    # why it is pending ("None" otherwise)


def queue_states() -> dict[str, QueueState] | str:
    """This user's jobs in the controller's memory (finished ones stay ``MinJobAge``, 5 min by default),
    by job id; the error line when ``squeue`` fails (a busy controller: try again later)."""
    try:
        proc = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%r"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"squeue: {exc}"
    if proc.returncode != 0:
        return f"squeue: {_last_line(proc.stderr or proc.stdout)}"
    states = {}
    for line in proc.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if job_id:
            states[job_id] = QueueState(state.strip(), reason.strip())
    return states


def never_clears(reason: str, known_nodes: set[str]) -> bool:
    """Whether a pending ``reason`` (squeue's %r) is one waiting cannot clear."""
    head = reason.split(",")[0].strip()
    if head in FATAL_REASONS or FATAL_REASON_PATTERN.match(head):
        return True
    if head == "ReqNodeNotAvail" and "UnavailableNodes:" in reason:
        # nodes that are down or reserved may come back; nodes that do not exist never will
        listed = reason.split("UnavailableNodes:", 1)[1].strip()
        return bool(listed) and bool(known_nodes) and not set(_hostnames(listed)) <= known_nodes
    return False


def _hostnames(hostlist: str) -> list[str]:
    try:
        return _scontrol("show", "hostnames", hostlist).split()
    except BenchError:
        return hostlist.split(",")


def reason_flags(reason: str) -> str:
    """The options that change what a job pending for ``reason`` asks for."""
    r = reason.lower()
    flags = [flag for key, flag in (("cpu", "--cpus-per-job"), ("mem", "--mem-gb"), ("gres", "--gpus-per-job"),
                                    ("gpu", "--gpus-per-job"), ("wall", "--time"), ("time", "--time"))
             if key in r]
    if "account" in r or "qos" in r and not flags:
        flags.append("your Slurm account/QOS")
    return ", ".join(dict.fromkeys(flags)) or "--cpus-per-job, --mem-gb, --gpus-per-job, --time or --partition"


def cancel(job_ids: list[str]) -> None:
    """``scancel`` these jobs (best effort: a job that just ended cannot be cancelled)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=60)
