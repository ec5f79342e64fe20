"""Argument types and pre-flight checks of the ``dasm-bench`` command line.

Every value is checked where it is parsed (argparse ``type=``) or before any compute is spent, so
a mistake is one line ``error: ...`` and exit 2 - never a traceback, never hours into a run.

Example::

    parser.add_argument("--epochs", type=positive_int)
    parser.add_argument("--seeds", type=seed_list)        # "0,1,2" -> [0, 1, 2]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Callable

from bench.bounds import MAX_COUNT, MAX_IPC, MAX_SEED  # noqa: F401  (MAX_SEED: imported from here by callers)


def _int(text: str, minimum: int, what: str, maximum: int | None = None) -> int:
    bound = f"{what}" + (f" up to {maximum}" if maximum is not None else "")
    try:
        value = int(text)
    except ValueError:  # "1.5", "1e3": the range is said too, so the fix is plain
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (expected {bound})") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise argparse.ArgumentTypeError(f"expected {bound}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int(text, 1, "a positive integer", MAX_COUNT)


def non_negative_int(text: str) -> int:
    return _int(text, 0, "an integer >= 0", MAX_COUNT)


def bounded_int(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[minimum, maximum]`` (the range is in the message).

    Example::

        parser.add_argument("--epochs", type=bounded_int(1, MAX_EPOCHS))
    """
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        return _int(text, minimum, what, maximum)

    parse.__name__ = "int"  # argparse names the type in its own messages
    return parse


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number in ``(low, high]``.

    Example::

        parser.add_argument("--lr", type=bounded_float(0, MAX_LR))    # 1e308 -> one line, exit 2
    """
    kind = "a positive finite number" if low == 0 else "a finite number"
    expected = f"{kind} in ({low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid float value: {text!r} (expected {expected})") from None
        if not (math.isfinite(value) and low < value <= high):  # the range in every refusal, NaN's too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = "float"
    return parse


def seed(text: str) -> int:
    return _int(text, 0, "a seed: an integer >= 0", MAX_SEED)


def _float(text: str, positive: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise argparse.ArgumentTypeError(f"expected a {'positive finite' if positive else 'finite'} number, "
                                         f"got {text!r}")
    return value


def positive_float(text: str) -> float:
    return _float(text, positive=True)


def finite_float(text: str) -> float:
    return _float(text, positive=False)


def _listed(text: str, parse) -> list:
    items = [v.strip() for v in text.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list with at least one value, got {text!r}")
    values = [parse(v) for v in items]
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"lists a value twice: {text!r}")
    return values


def int_list(text: str) -> list[int]:
    """Comma-separated positive integers (IPCs, budget rungs) up to ``MAX_IPC``, at least one, none twice."""
    return _listed(text, lambda v: _int(v, 1, "a positive integer", MAX_IPC))


def seed_list(text: str) -> list[int]:
    return _listed(text, seed)


def str_list(text: str) -> list[str]:
    return _listed(text, str)


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """Repeated ``--set KEY=VALUE`` options -> ``{KEY: VALUE}`` (values stay strings)."""
    from bench.errors import BenchError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise BenchError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def read_config(path: str) -> dict:
    """``--config``: a JSON object of config fields, or an exported sweep result ``{"config": {...}}``."""
    from bench.errors import BenchError
    from bench.files import read_regular

    try:
        loaded = json.loads(read_regular(Path(path), "config"))
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError, an int of 5,000 digits
        raise BenchError(f"cannot read config {path}: {exc}") from None
    except RecursionError:
        raise BenchError(f"cannot read config {path}: nested too deeply") from None
    fields = loaded.get("config", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(fields, dict):
        raise BenchError(f"config {path} must hold a JSON object of config fields "
                         f"(or {{\"config\": {{...}}}}), got {type(fields).__name__}")
    return dict(fields)


def set_output(out: Path, given: str | None, what: str = "--out") -> Path:
    """The ``.safetensors`` path a synthetic set given as ``--out`` is written to, checked before any
    work: a name that is a directory (``""``, ``new/``, an existing folder), a device, or a set or
    sidecar path that cannot be written is a one-line error, so no set is left without its sidecar.

    Example::

        out = set_output(Path(args.out), args.out)     # "x" -> x.safetensors (and x.json) checked
    """
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.store.synthetic import sidecar_path

    if given is not None and not given.strip():
        raise BenchError(f"{what} is an empty path, which names a directory; give a file, e.g. set.safetensors")
    # "/", ".", "new/": a directory, not a file name (Path drops a trailing slash)
    if not out.name or out.name == ".." or (given or "").endswith("/"):
        raise BenchError(f"{what} {given!r} names a directory; give a file, e.g. {out / 'set.safetensors'}")
    if out.exists() and not out.is_file():  # /dev/null: "/dev/null.safetensors" is not what was meant
        raise BenchError(f"cannot write {what} {out}: it is {'a directory' if out.is_dir() else 'not a regular file'}")
    if out.suffix != ".safetensors":
        out = out.with_name(out.name + ".safetensors")
    check_writable(out, what)
    check_writable(sidecar_path(out), f"{what} sidecar")
    return out


def check_label(text: str | None, what: str) -> None:
    """A name shown in tables (``--method`` of an import): not blank, no control characters."""
    from bench.errors import BenchError

    if text is not None and (not text.strip() or any(ord(c) < 32 or ord(c) == 127 for c in text)):
        raise BenchError(f"{what} {text!r} must be a non-blank name without control characters")


def sync_csv(out: Path) -> None:
    """The Parquet and CSV are rebuilt from the stored rows; a damaged ``results.csv`` is rewritten
    even when no row was added."""
    from bench.store.results import ResultsTable

    table = ResultsTable(out)
    if table.exists():
        table.consolidate()


def check_slurm() -> None:
    """One line, before anything is planned or submitted, when no Slurm cluster answers here
    (no ``sbatch`` on PATH, or a client without a reachable controller)."""
    import subprocess

    from bench.errors import BenchError

    hint = "run on a Slurm login node, or use --executor local / submitit-local"
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        raise BenchError(f"--executor slurm needs Slurm, but sbatch/sinfo are not on PATH here; {hint}")
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"--executor slurm: the Slurm controller does not answer ({exc}); {hint}") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise BenchError(f"--executor slurm: no reachable Slurm cluster here (sinfo: {said}); {hint}")
