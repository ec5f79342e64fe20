"""The full-data references of a results directory: ``<out>/full_data.json``, one record per protocol.

A method is compared with full data trained under the protocol its own rows used, so the file
holds a record per evaluation protocol (keyed by the protocol name the sets' rows carry, e.g.
``idc@200ep``)::

    {"by_protocol": {"dc@200ep": {"dataset": "digits", "arch": "convnet", "protocol": "dc@200ep",
                                  "acc": 98.9, "source": "computed"}, ...}}

The jobs that compute the references live here too: :func:`full_data_jobs` says which a grid
still needs (skipping current records; a published number is written at once) and
:func:`run_full_data_job` trains one in a worker.

The older single-record file (``{"dataset": ..., "protocol": "dc-nodsa@100ep", "acc": ...}``) is
still read: it becomes one record keyed by its own protocol.

Example::

    write_full_data(out, {"dataset": "digits", "arch": "convnet", "protocol": "idc@200ep", "acc": 99.0})
    read_full_data(out)["idc@200ep"]["acc"]      # 99.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from bench.errors import BenchError
from bench.files import read_regular, write_atomically

if TYPE_CHECKING:  # the table readers (plots, tables) import this module: keep torch out of it
    from bench.evaluation import EvalProtocol
    from bench.grid import GridSpec
    from bench.jobs import JobEnv

FILE = "full_data.json"


def read_full_data(out: str | Path) -> dict[str, dict[str, Any]]:
    """Protocol name -> record; empty when the file is absent or damaged (a damaged file only
    loses the reference rows and lines, never a run), and without any record whose accuracy is not
    a percentage in [0, 100] or whose protocol, dataset or arch is not text."""
    path = Path(out) / FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(read_regular(path, "full-data record"))
    except (OSError, ValueError, RecursionError, BenchError):  # ValueError: also an int of 5,000 digits
        return {}  # a FIFO or device under that name is not read: it would block
    if not isinstance(raw, dict):
        return {}
    if isinstance(raw.get("by_protocol"), dict):
        records = raw["by_protocol"]
    elif "acc" in raw:  # the single-record format
        records = {str(raw.get("protocol", "unknown")): raw}
    else:
        return {}
    good = {}
    for key, rec in records.items():
        acc = rec.get("acc") if isinstance(rec, dict) else None
        # the dashed line and the table's "full data" row: a NaN, inf, -5, 150, true or "50" is damage
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 100:
            continue
        if any(rec.get(name) is not None and not isinstance(rec[name], str)
               for name in ("protocol", "dataset", "arch")):
            continue
        good[str(key)] = {**rec, "acc": float(acc)}
    return good


def write_full_data(out: str | Path, record: dict[str, Any], key: str | None = None) -> Path:
    """Add (or replace) the record for ``key`` (default: ``record["protocol"]``), atomically;
    records of other protocols are kept."""
    target = Path(out)
    records = read_full_data(target)
    records[str(key or record.get("key") or record["protocol"])] = {k: v for k, v in record.items() if k != "key"}
    path = target / FILE
    write_atomically(path, json.dumps({"by_protocol": records}, indent=2, sort_keys=True).encode())
    return path


def reference_for(records: dict[str, dict[str, Any]], protocol: str,
                  dataset: str | None = None) -> dict[str, Any] | None:
    """The record for rows evaluated under ``protocol``: the same protocol when there is one,
    else (older directories) the only record there is, which then carries its own protocol name
    so a table can say that it differs. None when nothing fits."""
    fitting = {k: r for k, r in records.items() if dataset is None or r.get("dataset") in (None, dataset)}
    if protocol in fitting:
        return fitting[protocol]
    if len(fitting) == 1:
        return next(iter(fitting.values()))
    return None


def references_for_rows(records: dict[str, dict[str, Any]], protocols: Iterable[str],
                        dataset: str | None = None) -> dict[str, tuple[dict[str, Any], list[str]]]:
    """The full-data references of a table whose rows carry ``protocols``: record protocol ->
    (record, the rows' protocols it stands in for under ANOTHER protocol). A grid's default
    reference is ``dc-nodsa`` while its sets are under ``dc``: that list is then ``["dc@..."]``,
    and the table and figure say so (:func:`full_data_label`)."""
    refs: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for protocol in sorted(set(map(str, protocols))):
        rec = reference_for(records, protocol, dataset)
        if rec is None:
            continue
        name = str(rec.get("protocol"))
        _, foreign = refs.setdefault(name, (rec, []))
        if protocol != name:
            foreign.append(protocol)
    return refs


def full_data_label(name: str, foreign: list[str]) -> str:
    """``dc@200ep``, or ``dc-nodsa@2ep; the sets: dc@5ep`` when the sets were evaluated otherwise."""
    return name if not foreign else f"{name}; the sets: {', '.join(foreign)}"


# ----------------------------------------------------------------------------- computing references

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
    from bench.evaluation import full_data_accuracy

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
    from bench.evaluation import get_protocol
    from bench.grid import grid_protocols

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
    from bench.jobs import JobEnv

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
