"""Which cells a ``dasm-bench run`` was asked for: ``<out>/run_selection.json``.

A run restricted with ``--methods``/``--ipc``/``--seeds``/``--arch`` (e.g. a shortened demo) records
its selection, so ``dasm-bench compare`` expects from it only the reference cells it was asked to
compute; the other reference cells are "not run", not missing. No file (a run of the whole spec,
a ``grid``, an older run): every reference cell is expected. A run of the whole spec into a
directory that has a record turns it into ``{"full": true}``, which a later restricted run keeps
(the whole grid was asked for there).

Example::

    record_selection(out, load_spec("demo-digits"), load_spec("demo-digits").subset(["random"], [1]))
    selections = read_selection(out)        # [{"dataset": "digits", "methods": ["random"], ...}]
    in_selection(("random", "digits", 1, 0, "convnet", "dc@200ep"), selections)   # True
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from bench.errors import BenchError
from bench.files import read_regular, write_atomically

if TYPE_CHECKING:
    from bench.spec.experiment import ExperimentSpec

FILE = "run_selection.json"
AXES = ("methods", "ipcs", "seeds", "archs")


def _axes(spec: ExperimentSpec) -> dict[str, list[Any]]:
    return {"methods": spec.method_names(), "ipcs": list(spec.ipcs), "seeds": list(spec.seeds),
            "archs": list(spec.archs)}


def is_restricted(whole: ExperimentSpec, chosen: ExperimentSpec) -> bool:
    """Whether ``chosen`` leaves out some of ``whole``'s methods, IPCs, seeds or architectures."""
    mine = _axes(chosen)
    return any(not set(values) <= set(mine[axis]) for axis, values in _axes(whole).items())


def record_selection(out: str | os.PathLike, whole: ExperimentSpec, chosen: ExperimentSpec) -> Path:
    """Record what this run of ``chosen`` (a subset of ``whole``) was asked for, before it runs."""
    path = Path(out) / FILE
    if not is_restricted(whole, chosen):
        if not path.exists():  # no record already means "every cell expected": add no file
            return path
        record: dict[str, Any] = {"spec": whole.name, "full": True}
    else:
        previous = read_selection(out) if path.exists() else []
        if previous is None:  # the whole spec was asked for here before: every cell stays expected
            return path
        entry = {"dataset": chosen.dataset, **_axes(chosen)}
        record = {"spec": whole.name, "full": False,
                  "selections": previous + ([entry] if entry not in previous else [])}
    write_atomically(path, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return path


def read_selection(out: str | os.PathLike) -> list[dict[str, Any]] | None:
    """The selections of the restricted runs into ``out``; None when every cell is expected
    (no record, or a run of the whole spec). A damaged record is a one-line error (guessing
    would either hide missing cells or report cells never asked for)."""
    path = Path(out) / FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(read_regular(path, "run selection"))
        if raw.get("full") is True:
            return None
        selections = raw["selections"]
        for entry in selections:
            if not isinstance(entry.get("dataset"), str) or not all(isinstance(entry[a], list) for a in AXES):
                raise ValueError("an entry lacks its dataset or an axis")
        return list(selections)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BenchError(f"{path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                         "delete it to expect every reference cell from the run") from None


def in_selection(key: Sequence[Any], selections: list[dict[str, Any]]) -> bool:
    """Whether a cell key (method, dataset, ipc, seed, arch, protocol) was asked for by a selection."""
    method, dataset, ipc, seed, arch = key[:5]
    return any(dataset == s["dataset"] and method in s["methods"] and int(ipc) in s["ipcs"]
               and int(seed) in s["seeds"] and arch in s["archs"] for s in selections)
