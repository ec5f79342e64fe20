"""The full-data references of a results directory: ``<out>/full_data.json``, one record per protocol.

A method is compared with full data trained under the protocol its own rows used, so the file
holds a record per evaluation protocol (keyed by the protocol name the sets' rows carry, e.g.
``idc@200ep``)::

    {"by_protocol": {"dc@200ep": {"dataset": "digits", "arch": "convnet", "protocol": "dc@200ep",
                                  "acc": 98.9, "acc_best": 99.1, "source": "computed"}, ...}}

The older single-record file (``{"dataset": ..., "protocol": "dc-nodsa@100ep", "acc": ...}``) is
still read: it becomes one record keyed by its own protocol.

Example::

    write_full_data(out, {"dataset": "digits", "arch": "convnet", "protocol": "idc@200ep", "acc": 99.0})
    read_full_data(out)["idc@200ep"]["acc"]      # 99.0
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.files import write_atomically

FILE = "full_data.json"


def read_full_data(out: str | Path) -> dict[str, dict[str, Any]]:
    """Protocol name -> record; empty when the file is absent or damaged (a damaged file only
    loses the reference rows and lines, never a run)."""
    path = Path(out) / FILE
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
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
        try:
            good[str(key)] = {**rec, "acc": float(rec["acc"])}
        except (KeyError, TypeError, ValueError):
            continue
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
