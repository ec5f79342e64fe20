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
from pathlib import Path
from typing import Any, Iterable

from bench.errors import BenchError
from bench.files import read_regular, write_atomically

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
