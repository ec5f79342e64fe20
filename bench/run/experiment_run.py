"""Running an experiment spec (parsed and validated by ``bench.spec.experiment``): every missing cell,
then the reports; or only a plan of what that would do. Imports flow one way: this module uses
the spec, the spec module never imports this one.

Example::

    from bench.spec.experiment import load_spec
    print(plan_summary(load_spec("cross-arch-digits")))
    df = run_experiment(load_spec("cross-arch-digits"), workers=2, device="cpu")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from bench.spec.experiment import ExperimentSpec


def run_experiment(spec: ExperimentSpec, out: str | Path | None = None, device: str = "auto",
                   workers: int | None = None, executor: str = "local", threads: int | None = None,
                   slurm: Any = None, progress: bool = True, log: Callable[[str], None] = print,
                   data_root: str | None = None, download: bool = False, report: bool = True,
                   tensorboard: str | os.PathLike | None = None) -> Any:
    """Run every missing cell of ``spec`` into ``out`` (default ``results/<dataset>``), then
    regenerate the directory's tables and figures (and the claim report of a spec with a
    ``[claim]`` table); returns the whole results table. The one orchestrator: ``dasm-bench run``
    (a spec file), ``dasm-bench grid`` (its flags as a spec) and the Python API all come here.

    Example::

        df = run_experiment(load_spec("cross-arch-digits"), workers=2, device="cpu")
    """
    from bench.run.full_data_jobs import full_data_jobs
    from bench.run.runner import run_grid

    target = Path(out) if out is not None else spec.default_out
    grid = spec.grid(data_root, download)
    full_jobs = full_data_jobs(grid, target, spec.full_data_arch or spec.archs[0], device,
                               epochs=spec.full_data_epochs, published=spec.full_data_accuracy)
    sets, cells = spec.count_cells()
    log(f"{spec.name}: {len(spec.methods)} methods x {len(spec.ipcs)} IPCs x {len(spec.seeds)} seeds = "
        f"{sets} sets, {cells} evaluation cells -> {target}")
    from bench.train.acceleration import for_spec_run, use_options

    with use_options(for_spec_run(spec.runtime, device)):  # workers inherit it; the cells' keys do not see it
        df = run_grid(grid, target, device, progress=progress, log=log, workers=workers,
                      executor=executor, threads=threads, slurm=slurm, full_data=full_jobs, tensorboard=tensorboard)
    if report:
        from bench.report.plots import write_reports

        write_reports(target, df, log=log)
        if spec.claim_references:
            from bench.report.claim import write_claim_report

            write_claim_report(df, spec, target, log=log)
    return df


def plan_summary(spec: ExperimentSpec, out: str | Path | None = None) -> str:
    """What a run would do: the grid, how many of its cells ``out`` already holds, and the CPU time of
    the rest estimated from the dataset's committed cost table (bench/perf/cost_model.py), when it has one."""
    from bench.perf.cost_model import CostEstimator, cost_table_for
    from bench.spec.cells import plan_sets
    from bench.store.results import ResultsTable

    target = Path(out) if out is not None else spec.default_out
    grid = spec.grid()
    done = ResultsTable(target).done_keys()
    lines = [f"{spec.name} ({spec.source or 'spec'}): {spec.description}".rstrip(": "),
             f"  dataset {spec.dataset}; IPC {spec.ipcs}; seeds {spec.seeds}; archs {', '.join(spec.archs)}",
             f"  evaluation: protocol {', '.join(spec.protocols) or spec.protocol}, "
             f"epochs {spec.epochs or 'protocol default'}, {spec.num_models} models; pool {spec.train_split}"]
    if spec.skipped:
        lines.append(f"  skipped (not registered): {', '.join(spec.skipped)}")
    total_sets = stored = cells = finished = 0
    cost_path = cost_table_for(spec.dataset)
    estimator = CostEstimator.load(cost_path) if cost_path else None
    estimate, counted, unknown, refused = 0.0, 0, set(), set()
    protocol_names: dict[str, list[str]] = {}
    for planned in plan_sets(grid):  # the one enumeration (bench.spec.cells), as the runner's
        name, ipc = planned.method, planned.ipc
        protocol_names.setdefault(name, [])
        total_sets += 1
        if planned.refused:
            refused.add(f"{name} ipc={ipc}: {planned.refused}")
            continue
        have_set = (target / "synthetic" / f"{planned.distill_key}.safetensors").exists()
        stored += have_set
        if estimator is not None and not have_set:
            seconds = estimator.distill_seconds(name, ipc, planned.config)
            estimate += seconds or 0.0
            counted += seconds is not None
            if seconds is None:
                unknown.add(f"{name} distillation")
        for cell in planned.cells:
            if cell.protocol.name not in protocol_names[name]:
                protocol_names[name].append(cell.protocol.name)
            cells += 1
            is_done = cell.key in done
            finished += is_done
            if estimator is not None and not is_done:
                seconds = (estimator.evaluation_seconds(cell.protocol.name, ipc, cell.protocol.epochs, spec.num_models)
                           if cell.arch == "convnet" else None)
                estimate += seconds or 0.0
                counted += seconds is not None
                if seconds is None:
                    unknown.add(f"{cell.protocol.name} evaluation on {cell.arch}")
    for entry in spec.methods:
        names = ", ".join(protocol_names.get(entry.name, []))
        lines.append(f"  {entry.name:<12} protocol {names:<14} overrides {entry.overrides or '-'}")
    if refused:
        lines.append(f"  refused by the method (no cells): {'; '.join(sorted(refused))}")
    lines.append(f"  {total_sets} sets ({stored} stored), {cells} evaluation cells ({finished} done) in {target}")
    if estimator is None:
        lines.append(f"  estimated time: no cost table for {spec.dataset} (measure one: dasm-bench cost --dataset "
                     f"{spec.dataset} --out results/<dataset>/cost)")
    elif unknown and not counted:
        lines.append(f"  estimated time: unknown; {cost_path} has no row for this work ({', '.join(sorted(unknown))})")
    else:
        lines.append(f"  estimated time of what is left: {'at least ' if unknown else ''}{estimate / 3600:.1f} "
                     f"CPU-hours on one thread, from {cost_path}"
                     + (f" (not counted, no row: {', '.join(sorted(unknown))})" if unknown else "")
                     + "; CPU only: no GPU cost has been measured")
    return "\n".join(lines)
