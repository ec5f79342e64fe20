"""Device check: does every method run on this device? A few iterations of each, timed, then one full evaluation.

Every method runs at the first IPC, then every method at the next, and so on: each distills with
its budget fields set to ``iterations`` (coresets: a 1-epoch feature network; MTT: one expert
trained for the fewest epochs the start windows of every IPC need, in ``out_dir/mtt_buffers``,
trained afresh and removed at the end; DASM and its variants: the base shrunk the same way, ranking models of
:data:`RANKING_EPOCHS`), then the set trains one model for ``eval_epochs`` under the method's own
protocol. An exception fails that method only. Then one set (DM's at the largest IPC when it passed)
gets one full evaluation: protocol ``dc`` at its full epochs unless ``full_eval_epochs`` says less.
Times are wall seconds (``torch.cuda.synchronize`` first on CUDA; the first run also pays the
process's one-off start-up: CUDA context, kernel loading). Once ``budget_seconds`` have
passed no new run starts; the rest are ``SKIPPED(time)``. ``device_check.csv`` (:data:`COLUMNS`,
rewritten after every row) and ``device_check.md`` land in ``out_dir``; a line per run is printed.

The evaluation runs under the runtime options a CIFAR-10 spec run gets (bf16 autocast and
channels_last on CUDA, see :mod:`bench.train.acceleration`), unless ``--amp``/``--channels-last`` say otherwise.

Example::

    rows = run_device_check(load_dataset("digits"), "cpu", [1], ["random", "dm"], 2, Path("out"), 2)
    [r["status"] for r in rows]        # ['PASS', 'PASS', 'PASS'] (the last: the full evaluation)

From the shell (what ``nox -s device-check`` runs; files into ``results/device-check``)::

    python -m bench.cli.device_check --dataset cifar10-jpeg --data-root ../shared/data --device cuda
"""

from __future__ import annotations

import csv
import dataclasses
import io
import platform
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from bench.data.core import Dataset
from bench.files import write_atomically
from bench.store.synthetic import SyntheticSet
from bench.train.acceleration import Acceleration, check_for_device, for_spec_run, use_options

METHODS = ("random", "herding", "kcenter", "forgetting", "dc", "dsa", "dm", "idc", "mtt", "dasm")
COLUMNS = ["check", "method", "ipc", "device", "device_name", "seconds_distill", "seconds_eval", "eval_protocol",
           "accuracy", "peak_gpu_mib", "status", "error", "torch_version", "code_version", "acceleration"]
RANKING_EPOCHS = 2           # DASM's ranking models (difficulty_epochs, real_ranking_epochs)
SPEC_RUNTIME = {"amp": "bf16", "channels_last": True}  # bench/specs/*cifar*.toml [runtime], CUDA only
FULL_EVAL_PREFERRED = "dm"
DEFAULT_OUT = "results/device-check"


def check_overrides(method: str, dataset: str, ipcs: Sequence[int], iterations: int, buffer_dir: Path,
                    ipc: int) -> dict[str, Any]:
    """The config overrides that shrink ``method`` at ``ipc`` to a few iterations (module docstring)."""
    from bench.methods.registry import default_config, get_method

    spec = get_method(method)
    config = default_config(method, dataset, ipc)
    names = {f.name for f in dataclasses.fields(config)}
    overrides: dict[str, Any] = {f: iterations for f in spec.budget_fields or ()}
    if spec.budget_fields is None and "epochs" in names:
        overrides["epochs"] = 1  # a coreset's feature network
    if {"num_experts", "train_epochs", "buffer_dir"} <= names:  # MTT: one expert buffer for every IPC
        needed = [max(c.max_start_epoch, c.max_start_epoch_final or 0) - 1 + c.expert_epochs
                  for c in (default_config(method, dataset, i) for i in ipcs)]
        overrides.update(num_experts=1, buffer_dir=str(buffer_dir), train_epochs=max(needed))
    if "base_overrides" in names:  # DASM and its variants
        base = get_method(config.base)
        shrunk = ({f: iterations for f in base.budget_fields} if base.budget_fields
                  else {"epochs": 1} if "epochs" in {f.name for f in dataclasses.fields(base.config_cls)} else {})
        overrides["base_overrides"] = {**config.base_overrides, **shrunk}
        overrides.update({f: RANKING_EPOCHS for f in ("difficulty_epochs", "real_ranking_epochs") if f in names})
    return overrides


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``fn()`` and its wall seconds (CUDA work finished before each clock reading)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda d: None)
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def _message(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (what a FAIL row and line say)."""
    return f"{type(exc).__name__}: {_message(exc)}" if _message(exc) else type(exc).__name__


def run_device_check(dataset: Dataset, device: str | torch.device, ipcs: Sequence[int],
                     methods: Sequence[str] = METHODS, iterations: int = 2, out_dir: Path = Path(DEFAULT_OUT),
                     full_eval_epochs: int | None = None, eval_epochs: int = 10, budget_seconds: float = 540.0,
                     options: Acceleration | None = None, started: float | None = None,
                     report: Callable[[str], None] = lambda line: print(line, flush=True)) -> list[dict[str, Any]]:
    """Run the check (module docstring); returns the rows written to ``device_check.csv``.

    ``options``: the evaluation's runtime options (default: :func:`runtime_options`); ``started``: a
    ``time.perf_counter()`` value the budget counts from (default: now)."""
    from bench.methods.registry import DistillRequest, distill, get_method, own_protocol
    from bench.protocols import get_protocol
    from bench.train.evaluation import evaluate_synthetic, resolve_device
    from bench.version import code_version

    device = resolve_device(device)
    options = options or runtime_options(device)
    started = time.perf_counter() if started is None else started
    out_dir, buffer_dir = Path(out_dir), Path(out_dir) / "mtt_buffers"
    shutil.rmtree(buffer_dir, ignore_errors=True)  # a killed run's experts: the check trains its own
    for method in methods:
        get_method(method)  # an unknown name is a one-line error before any work
    for ipc in ipcs:
        dataset.check_ipc(ipc)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    common = {"device": str(device), "device_name": name, "torch_version": torch.__version__,
              "code_version": code_version(),
              "acceleration": f"amp={options.amp} channels_last={'on' if options.channels_last else 'off'} "
                              f"compile={options.compile}"}
    rows: list[dict[str, Any]] = []
    sets: dict[tuple[str, int], SyntheticSet] = {}

    def add(row: dict[str, Any], line: str) -> None:
        rows.append({c: row.get(c, common.get(c, "")) for c in COLUMNS})
        report(line)
        _write_csv(out_dir / "device_check.csv", rows)

    def over_budget() -> bool:
        return time.perf_counter() - started > budget_seconds

    with use_options(options):
        for ipc in ipcs:
            for method in methods:
                row: dict[str, Any] = {"check": "distill", "method": method, "ipc": ipc}
                if over_budget():
                    add({**row, "status": "SKIPPED(time)", "error": f"budget of {budget_seconds:g} s spent"},
                        f"SKIPPED(time) {method} ipc {ipc}")
                    continue
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                try:
                    overrides = check_overrides(method, dataset.name, ipcs, iterations, buffer_dir, ipc)
                    request = DistillRequest(dataset, ipc=ipc, seed=0, device=device, progress=False)
                    syn, row["seconds_distill"] = _timed(lambda: distill(method, request, overrides=overrides),
                                                         device)
                    protocol = get_protocol(own_protocol(syn.metadata, dataset.name), epochs=eval_epochs)
                    row["eval_protocol"] = protocol.name
                    result, row["seconds_eval"] = _timed(
                        lambda: evaluate_synthetic(syn, dataset, protocol=protocol, num_models=1, device=device),
                        device)
                    row.update(accuracy=round(result.last_mean, 2), status="PASS")
                    sets[(method, ipc)] = syn
                    line = (f"PASS {method} ipc {ipc}: distill {row['seconds_distill']:.1f} s, "
                            f"eval {row['seconds_eval']:.1f} s")
                except Exception as exc:  # noqa: BLE001 - one method's failure must not stop the rest
                    row.update(status="FAIL", error=_first_line(exc))
                    line = f"FAIL {method} ipc {ipc}: {row['error']}"
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                if device.type == "cuda":
                    row["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20)
                add(row, line)
        _full_evaluation(dataset, device, sets, full_eval_epochs, over_budget, add)
    shutil.rmtree(buffer_dir, ignore_errors=True)
    write_atomically(out_dir / "device_check.md", device_check_markdown(rows, dataset.name,
                                                                         time.perf_counter() - started))
    return rows


def _full_evaluation(dataset: Dataset, device: torch.device, sets: dict[tuple[str, int], SyntheticSet],
                     epochs: int | None, over_budget: Callable[[], bool],
                     add: Callable[[dict[str, Any], str], None]) -> None:
    """One full ``dc`` evaluation of one passing set (DM's at the largest IPC, else the first at it)."""
    from bench.protocols import get_protocol
    from bench.train.evaluation import evaluate_synthetic

    protocol = get_protocol("dc", epochs)
    row: dict[str, Any] = {"check": "full evaluation", "eval_protocol": protocol.name}
    if not sets:
        add({**row, "status": "SKIPPED(no set)", "error": "no method passed"},
            "SKIPPED(no set) full evaluation: no method passed")
        return
    top = max(ipc for _, ipc in sets)
    key = (FULL_EVAL_PREFERRED, top) if (FULL_EVAL_PREFERRED, top) in sets else next(k for k in sets if k[1] == top)
    row.update(method=key[0], ipc=key[1])
    what = f"full evaluation {key[0]} ipc {key[1]} ({protocol.name}, {protocol.epochs} epochs)"
    if over_budget():
        add({**row, "status": "SKIPPED(time)", "error": "budget spent"}, f"SKIPPED(time) {what}")
        return
    try:
        result, row["seconds_eval"] = _timed(
            lambda: evaluate_synthetic(sets[key], dataset, protocol=protocol, num_models=1, device=device), device)
        row.update(status="PASS", accuracy=round(result.last_mean, 2))
        add(row, f"PASS {what}: {row['seconds_eval']:.1f} s, accuracy {row['accuracy']:.2f}%")
    except Exception as exc:  # noqa: BLE001
        add({**row, "status": "FAIL", "error": _first_line(exc)}, f"FAIL {what}: {_first_line(exc)}")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k.startswith("seconds") else v)
                         for k, v in row.items()})
    write_atomically(path, buffer.getvalue())


def device_check_markdown(rows: list[dict[str, Any]], dataset: str, seconds: float) -> str:
    """The Markdown report: the verdict, where it ran, and a row per run."""
    first = rows[0] if rows else {}
    failed = [r for r in rows if r["status"] == "FAIL"]
    skipped = [r for r in rows if r["status"].startswith("SKIPPED")]
    verdict = "FAIL" if failed else "PASS" if not skipped else "PASS (some skipped)"
    lines = [f"# Device check: {verdict}", "",
             f"{dataset} on {first.get('device', '?')} ({first.get('device_name', '?')}), torch "
             f"{first.get('torch_version', '?')}, code {first.get('code_version', '?')}, "
             f"{first.get('acceleration', '')}; {seconds:.0f} s in all; {len(failed)} failed, {len(skipped)} skipped.",
             "", "| check | method | ipc | distill s | eval s | protocol | accuracy | peak GPU MiB | status | error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    keys = ("check", "method", "ipc", "seconds_distill", "seconds_eval", "eval_protocol", "accuracy", "peak_gpu_mib",
            "status", "error")
    for r in rows:
        cells = [f"{r[k]:.1f}" if isinstance(r[k], float) and k.startswith("seconds") else str(r[k]) for k in keys]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def runtime_options(device: str | torch.device, amp: str | None = None, channels_last: str | None = None,
                    compile: str | None = None) -> Acceleration:
    """The options of a CIFAR-10 spec run on ``device`` (:data:`SPEC_RUNTIME` on CUDA only), with any
    given flag winning; a flag asking for bf16 or channels_last off CUDA is a one-line error."""
    options = for_spec_run(SPEC_RUNTIME, device)
    given = {k: v for k, v in (("amp", amp), ("compile", compile)) if v is not None}
    if channels_last is not None:
        given["channels_last"] = channels_last == "on"
    options = dataclasses.replace(options, **given)
    check_for_device(options, device)
    return options
