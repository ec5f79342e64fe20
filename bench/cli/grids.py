"""``dasm-bench`` commands that run or report on a whole grid: grid, run (an experiment spec),
budget, sweep, plot (``bench.cli.main`` dispatches to them; each imports what it uses when run).

Example::

    cmd_run(build_parser().parse_args(["run", "cross-arch-digits", "--plan"]))
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.checks import check_slurm, parse_sets, sync_csv
from bench.files import describe_written, file_snapshot
from bench.vocabulary import OWN_PROTOCOL, normalise_protocol


def cmd_grid(args: argparse.Namespace) -> None:
    """``dasm-bench grid``: the flags become an experiment spec, run by the one orchestrator
    (:func:`bench.run.experiment_run.run_experiment`), exactly as ``dasm-bench run`` runs a file."""
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.run.experiment_run import run_experiment
    from bench.spec.experiment import ExperimentSpec, MethodEntry
    from bench.store.results import ResultsTable, check_schema

    protocol = normalise_protocol(args.protocol)
    if args.protocols and protocol != OWN_PROTOCOL:
        raise BenchError("give --protocol or --protocols, not both")
    check_writable(args.out, "--out", directory=True)
    if args.tensorboard is not None:  # a file, "" or "/": refused before the grid, not after its first cell
        check_writable(args.tensorboard, "--tensorboard", directory=True)
    table = ResultsTable(args.out)
    check_schema(table.load(), table.parquet)
    spec = ExperimentSpec(name="grid", dataset=args.dataset, methods=[MethodEntry(m) for m in args.methods],
                          ipcs=args.ipc, seeds=args.seeds, archs=args.arch, protocol=protocol,
                          protocols=list(args.protocols), epochs=args.epochs, num_models=args.models,
                          full_data_epochs=args.full_data_epochs, out=args.out)
    before = file_snapshot(Path(args.out))
    # one worker, as the grid always ran; the full-data line on the first architecture, as a spec's
    run_experiment(spec, args.out, args.device, workers=1, progress=not args.no_progress,
                   data_root=args.data_root, download=args.download, tensorboard=args.tensorboard)
    sync_csv(Path(args.out))
    print(describe_written(Path(args.out), before))


def cmd_plot(args: argparse.Namespace) -> None:
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.report.plots import write_reports
    from bench.store.results import ResultsTable, check_schema, repair_csv

    out = Path(args.results)
    table = ResultsTable(out)
    if not table.exists() and (out / "published.csv").exists():  # a `dasm-bench published` folder
        from bench.published.evaluate import render_table

        check_writable(out, "results directory", directory=True)
        print(f"wrote {render_table(out)}")
        return
    if not table.exists():
        raise BenchError(f"no results table in {out} (expected {table.parquet.name} or {table.cells.name}/)")
    check_writable(out, "results directory", directory=True)
    df = check_schema(table.load(), table.parquet)
    before = file_snapshot(out)
    if repair_csv(table, df):
        print(f"{table.csv.name} was unreadable or stale: rewritten from the stored rows")
    write_reports(out, table.consolidate())  # a killed run's cells are in the regenerated table too
    print(describe_written(out, before))


def cmd_sweep(args: argparse.Namespace) -> None:
    from bench.paths import check_writable
    from bench.run.sweep import SweepSpec, run_sweep

    if args.out is not None:  # "" too: it would fall back to the default silently
        check_writable(args.out, "--out", directory=True)
    # DASM's search-space settings, checked by its registered search hook (dasm.schedule_search)
    space = dict(max_segments=args.max_segments, max_lo=args.max_lo, sample_first_window=args.sample_first_window,
                 sample_hi=args.sample_hi, lr_factor=args.lr_factor)
    spec = SweepSpec(dataset=args.dataset, ipc=args.ipc, base=args.base, trials=args.trials, seed=args.seed,
                     worker=args.worker, study=args.study, storage=args.storage, out=args.out, timeout=args.timeout,
                     overrides=parse_sets(args.set), space=space, arch=args.arch, protocol=args.protocol,
                     eval_epochs=args.epochs, eval_models=args.models, prune_startup=args.prune_startup,
                     device=args.device, data_root=args.data_root, download=args.download)
    run_sweep(spec)


def cmd_budget(args: argparse.Namespace) -> None:
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.run.budget import run_budget
    from bench.spec.budget import BudgetSpec

    check_writable(args.out, "--out", directory=True)  # before any compute

    overrides: dict[str, dict[str, str]] = {}
    for key, value in parse_sets(args.set).items():
        method, dot, name = key.partition(".")
        if not dot or not method or not name:
            raise BenchError(f"--set expects METHOD.KEY=VALUE, got {key}={value}")
        overrides.setdefault(method, {})[name] = value
    spec = BudgetSpec(methods=args.methods, dataset=args.dataset, ipcs=args.ipc, seeds=args.seeds, rungs=args.rungs,
                      protocol=normalise_protocol(args.protocol), epochs=args.epochs,
                      num_models=args.models, overrides=overrides, max_hours=args.max_hours,
                      data_root=args.data_root, download=args.download, train_split=args.train_split)
    before = file_snapshot(Path(args.out))
    run_budget(spec, args.out, args.device, workers=args.workers, progress=not args.no_progress)
    print(describe_written(Path(args.out), before))


def cmd_run(args: argparse.Namespace) -> None:
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.run.executors import SlurmOptions
    from bench.run.experiment_run import plan_summary, run_experiment
    from bench.spec.experiment import load_spec
    from bench.store.results import ResultsTable, check_schema

    whole = load_spec(args.spec)
    spec = whole.subset(args.methods, args.ipc, args.seeds, args.arch)
    if args.out is not None and not args.out.strip():  # --plan too: it would name the default directory
        raise BenchError("--out is an empty path; give a directory")
    out = Path(args.out) if args.out is not None else spec.default_out
    table = ResultsTable(out)
    check_schema(table.load(), table.parquet)
    if args.plan:
        print(plan_summary(spec, args.out))
        return
    check_writable(args.out if args.out is not None else out, "--out", directory=True)  # "" is not "."
    if args.tensorboard is not None:
        check_writable(args.tensorboard, "--tensorboard", directory=True)
    if args.executor == "slurm":
        check_slurm()
    from bench.spec.run_selection import record_selection

    before = file_snapshot(out)
    record_selection(out, whole, spec)  # `compare` then expects only the reference cells asked for
    slurm = SlurmOptions(partition=args.partition, timeout_min=args.time, gpus_per_job=args.gpus_per_job,
                         cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb)
    run_experiment(spec, out, args.device, workers=args.workers, executor=args.executor, threads=args.threads,
                   slurm=slurm, progress=not args.no_progress, data_root=args.data_root, download=args.download,
                   report=not args.no_report, tensorboard=args.tensorboard)
    sync_csv(out)
    print(describe_written(out, before))
