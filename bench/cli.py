"""The ``dasm-bench`` command line: distill, evaluate, show, list, grid, plot.

Bad input ends with one line ``error: ...`` on stderr and exit code 2, never a traceback.

Examples::

    dasm-bench list
    dasm-bench distill --method herding --dataset digits --ipc 10 --seed 0 --out herding.safetensors
    dasm-bench evaluate herding.safetensors --arch convnet --models 5 --results results/mine
    dasm-bench show herding.safetensors --out herding.png
    dasm-bench grid --methods random,herding --dataset digits --ipc 1,10 --seeds 0,1,2 --out results/mine
    dasm-bench sweep --dataset digits --ipc 10 --base dm --trials 20 --set base_overrides=iterations=50
    dasm-bench run cross-arch-digits --workers 2          # an experiment spec (bench/specs/*.toml)
    dasm-bench budget --methods dm,idc --ipc 10 --seeds 0,1,2 --rungs 1,2,4 --out results/digits/budget
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from bench.cli_checks import (check_slurm, finite_float, int_list, non_negative_int, positive_float, positive_int,
                              read_config, seed, seed_list, str_list, sync_csv)

EXIT_BAD_INPUT = 2


def _check_torchvision() -> None:
    """A torch/torchvision build mismatch makes every timm import fail; say so in one line."""
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # RuntimeError "operator torchvision::nms does not exist", ImportError, OSError
        import torch

        from bench.errors import BenchError

        raise BenchError(
            f"torchvision cannot be imported beside torch {torch.__version__} ({str(exc).splitlines()[0][:80]}); "
            "install a matching pair from the package registry: pip install --force-reinstall torch torchvision"
        ) from None


def _parse_sets(items: Sequence[str] | None) -> dict[str, str]:
    from bench.errors import BenchError

    out = {}
    for item in items or []:
        if "=" not in item:
            raise BenchError(f"--set expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    _add_data(p)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="where real datasets live (default: $DASM_DATA or ~/.cache)")
    p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
    p.add_argument("--no-verify-checksums", action="store_true",
                   help="skip comparing CIFAR-10/100 and SVHN files with their published MD5s (for re-packed "
                        "copies); the files are still parsed without running any code from them")


def _add_acceleration(p: argparse.ArgumentParser) -> None:
    # runtime options (bench/acceleration.py): never part of a cell's key; passed to workers by environment
    p.add_argument("--compile", choices=["auto", "on", "off"], default=None,
                   help="torch.compile the evaluation training step (default: auto = on CPU for ConvNet runs "
                        "long enough to pay for the compile)")
    p.add_argument("--amp", choices=["off", "bf16"], default=None, help="bf16 autocast of evaluation training "
                   "(CUDA only; default: off, or the spec's [runtime] on CUDA)")
    p.add_argument("--channels-last", choices=["on", "off"], default=None,
                   help="channels_last evaluation training (CUDA only; default: off, or the spec's [runtime] on CUDA)")


_ACCELERATION_ENV = {"compile": "DASM_COMPILE", "amp": "DASM_AMP", "channels_last": "DASM_CHANNELS_LAST"}


def _add_tensorboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard event files here: each cell's accuracy and its set's stored "
                        "curves (needs the tensorboard package)")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dasm-bench", description="Dataset distillation benchmark harness (DASM).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list methods, datasets and architectures")
    p.add_argument("what", nargs="?", choices=["methods", "datasets", "archs", "all"], default="all")
    p.add_argument("--filter", default=None, help="wildcard for timm architectures, e.g. 'resnet*'")

    p = sub.add_parser("distill", help="distill a synthetic set and save it (safetensors + JSON)")
    p.add_argument("--method", required=True)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=positive_int, required=True, help="images per class")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--config", default=None, help="JSON file of config fields (e.g. an exported sweep result)")
    p.add_argument("--out", default=None, help="output .safetensors (default: results/synthetic/<method>-<dataset>-ipc<N>-s<seed>)")
    p.add_argument("--picture", action="store_true", help="also save a PNG grid next to the set")
    p.add_argument("--train-split", choices=["full", "train-val"], default="full",
                   help="full: the whole training set (reproduction, default); train-val: hold out val (tuning)")
    _add_common(p)

    p = sub.add_parser("evaluate", help="train fresh models on a synthetic set, test on the real test split")
    p.add_argument("synthetic", help="path of a .safetensors synthetic set")
    p.add_argument("--arch", default="convnet", type=str_list, help="comma-separated architectures")
    p.add_argument("--protocol", default=None, help="dc | dc-nodsa | idc (default: the method's own)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the protocol's epochs")
    p.add_argument("--lr", type=positive_float, default=None, help="override the protocol's learning rate")
    p.add_argument("--models", type=positive_int, default=5, help="number of fresh models (default: 5)")
    p.add_argument("--results", default=None, help="append rows to the results table in this directory")
    _add_acceleration(p)
    _add_common(p)

    p = sub.add_parser("show", help="save a picture of a synthetic set (a row per class)")
    p.add_argument("synthetic")
    p.add_argument("--out", default=None, help="PNG path (default: next to the set)")
    p.add_argument("--decoded", action="store_true", help="show decoded (multi-formation) images")
    p.add_argument("--max-per-class", type=positive_int, default=20)
    p.add_argument("--curves", action="store_true",
                   help="plot the matching-loss and validation curves stored in the set's metadata instead")

    p = sub.add_parser("grid", help="distill and evaluate a methods x IPC x seeds grid, then plot it")
    p.add_argument("--methods", type=str_list, required=True)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=int_list, required=True)
    p.add_argument("--seeds", type=seed_list, default=[0])
    p.add_argument("--arch", type=str_list, default=["convnet"])
    p.add_argument("--protocol", default="default")
    p.add_argument("--protocols", type=str_list, default=[],
                   help="evaluate every set under several protocols, e.g. own,idc (own: the method's own); "
                        "random and full data under every protocol that appears")
    p.add_argument("--epochs", type=positive_int, default=None)
    p.add_argument("--models", type=positive_int, default=5)
    p.add_argument("--full-data-epochs", type=positive_int, default=None,
                   help="epochs of the full-data reference line")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--device", default="auto")
    _add_acceleration(p)
    _add_data(p)
    p.add_argument("--no-progress", action="store_true")
    _add_tensorboard(p)

    p = sub.add_parser("budget", help="budget curves: each method at x1, x2, x4, ... its distillation budget")
    p.add_argument("--methods", type=str_list, required=True, help="methods with a budget, e.g. dc,dm,idc,mtt,dasm")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=int_list, required=True)
    p.add_argument("--seeds", type=seed_list, default=[0])
    p.add_argument("--rungs", type=int_list, default=[1, 2, 4, 8], help="budget multipliers (default: 1,2,4,8)")
    p.add_argument("--protocol", default="own", help="evaluation protocol (default: own = each method's)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the protocol's epochs")
    p.add_argument("--models", type=positive_int, default=5, help="fresh models per set (default: 5)")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE",
                   help="set a method's x1 config field, e.g. dasm.base=idc or dm.iterations=100 (repeatable)")
    p.add_argument("--max-hours", type=positive_float, default=None, help="start no rung projected to end after H hours")
    p.add_argument("--workers", type=positive_int, default=1, help="tasks at once (default: 1; more share the CPU "
                                                         "and inflate the measured seconds)")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--device", default="auto")
    _add_data(p)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("plot", help="regenerate tables and figures of a results directory (no recomputation)")
    p.add_argument("results", help="results directory")

    p = sub.add_parser("run", help="run an experiment spec (TOML): every missing cell, then tables and figures")
    p.add_argument("spec", help="spec file, or the name of a shipped one, e.g. ipc-saturation-digits")
    p.add_argument("--out", default=None, help="results directory (default: the spec's `out`, else results/<dataset>)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="tasks at once (default: one per CPU core, one per GPU on CUDA, 64 jobs on Slurm; "
                        "1 = all in this process)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch threads per worker (default: cores / workers)")
    p.add_argument("--executor", choices=["local", "submitit-local", "slurm"], default="local",
                   help="local processes (default), submitit's local executor, or Slurm through submitit")
    p.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's default partition)")
    p.add_argument("--time", type=positive_int, default=None,
                   help="Slurm time limit per job in minutes (default: 240, or the partition's limit if lower)")
    p.add_argument("--gpus-per-job", type=non_negative_int, default=0, help="GPUs per Slurm job (default: 0)")
    p.add_argument("--cpus-per-job", type=positive_int, default=None,
                   help="CPUs (and torch threads) per Slurm job (default: 4, or a node's CPUs if fewer)")
    p.add_argument("--mem-gb", type=positive_int, default=None, help="memory per Slurm job in GB (default: Slurm's)")
    p.add_argument("--methods", type=str_list, default=None, help="run only these of the spec's methods")
    p.add_argument("--ipc", type=int_list, default=None, help="run only these of the spec's IPCs")
    p.add_argument("--seeds", type=seed_list, default=None, help="replace the spec's seeds")
    p.add_argument("--arch", type=str_list, default=None, help="run only these of the spec's architectures")
    p.add_argument("--plan", action="store_true", help="print the grid and what is already done, run nothing")
    _add_acceleration(p)
    p.add_argument("--no-report", action="store_true", help="skip regenerating tables and figures at the end")
    _add_tensorboard(p)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    _add_data(p)
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("sweep", help="Optuna sweep of DASM's segment schedule, scored on the validation split")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=positive_int, required=True, help="images per class")
    p.add_argument("--base", default="idc", help="the base matcher of every segment (default: idc)")
    p.add_argument("--trials", type=positive_int, default=20, help="trials THIS worker runs (default: 20)")
    p.add_argument("--timeout", type=positive_float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--study", default=None, help="study name (default: dasm-<base>-<dataset>-ipc<N>)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db for many workers "
                        "(default: sqlite:///<out>.db)")
    p.add_argument("--out", default=None, help="directory for best.json, trials.csv, plots "
                                               "(default: results/sweeps/<study>)")
    p.add_argument("--worker", type=non_negative_int, default=0, help="this worker's index: its own sampler stream (default: 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="fix a DASM config field, e.g. base_overrides=iterations=50 or difficulty_epochs=50")
    p.add_argument("--max-segments", type=positive_int, default=4, help="largest K sampled (default: 4, at most IPC)")
    p.add_argument("--max-lo", type=finite_float, default=0.75, help="largest window start sampled (default: 0.75)")
    p.add_argument("--sample-hi", action="store_true", help="also sample each window's upper end (default: 1)")
    p.add_argument("--sample-first-window", action="store_true", help="also sample segment 1's window")
    p.add_argument("--lr-factor", type=finite_float, default=10.0,
                   help="sample lr_img in [default/F, default*F], log scale; 1 = do not sweep it (default: 10)")
    p.add_argument("--arch", default="convnet", help="evaluation architecture (default: convnet)")
    p.add_argument("--protocol", default=None, help="dc | dc-nodsa | idc (default: the base's own)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the evaluation protocol's epochs")
    p.add_argument("--models", type=positive_int, default=2, help="fresh models per trial evaluation (default: 2)")
    p.add_argument("--prune-startup", type=non_negative_int, default=3, help="completed trials before pruning starts (default: 3)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--seed", type=seed, default=0, help="distillation, evaluation and sampler seed (default: 0)")
    _add_data(p)
    _add_import_compare(sub)
    return parser


# ----------------------------------------------------------------------------- commands

def cmd_list(args: argparse.Namespace) -> None:
    from bench.data import list_datasets
    from bench.models import list_architectures
    from bench.registry import method_summaries

    if args.what in ("methods", "all"):
        print("methods:")
        for name, (kind, description) in method_summaries().items():  # read from source: no method imports
            print(f"  {name:<14} {kind:<9} {description}")
    if args.what in ("datasets", "all"):
        print("datasets:")
        for name, desc in list_datasets().items():
            print(f"  {name:<14} {desc}")
    if args.what in ("archs", "all"):
        archs = list_architectures(args.filter)
        if args.what == "all" and not args.filter:
            shown = archs[:12]
            print(f"architectures ({len(archs)}; `dasm-bench list archs --filter 'vit*'` for more):")
            print("  " + ", ".join(shown) + ", ...")
        else:
            print("architectures:")
            for a in archs:
                print(f"  {a}")


def cmd_distill(args: argparse.Namespace) -> None:
    from bench.data import load_dataset
    from bench.evaluation import resolve_device
    from bench.paths import check_writable, safe_slug
    from bench.registry import DistillRequest, apply_overrides, default_config, distill, get_method
    from bench.synthetic import save_picture

    get_method(args.method)
    overrides = read_config(args.config) if args.config else {}
    overrides.update(_parse_sets(args.set))
    out = Path(args.out or f"results/synthetic/{safe_slug(args.method)}-{safe_slug(args.dataset)}-ipc{args.ipc}"
                           f"-s{args.seed}.safetensors")
    if out.suffix != ".safetensors":
        out = out.with_name(out.name + ".safetensors")
    check_writable(out, "--out")  # before any compute
    data = load_dataset(args.dataset, args.data_root, args.download, args.train_split)
    data.check_ipc(args.ipc)
    apply_overrides(default_config(args.method, args.dataset, args.ipc), overrides)  # a bad field: before any compute
    device = resolve_device(args.device)
    request = DistillRequest(data, args.ipc, args.seed, device, progress=not args.no_progress)
    syn = distill(args.method, request, overrides=overrides)
    path = syn.save(out)
    print(f"saved {len(syn)} images ({args.method}, {args.dataset}, IPC {args.ipc}, seed {args.seed}) "
          f"to {path} in {syn.metadata['seconds']:.1f}s")
    if args.picture:
        png = save_picture(syn, path.with_suffix(".png"), data.mean, data.std, data.class_names,
                           title=f"{args.method} IPC {args.ipc}")
        print(f"picture: {png}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    import dataclasses

    from bench.data import load_dataset
    from bench.errors import BenchError
    from bench.evaluation import check_compatible, evaluate_synthetic, get_protocol, reference_protocol, resolve_device
    from bench.models import model_name_ok
    from bench.paths import check_writable
    from bench.registry import get_method
    from bench.results import ResultsTable, check_schema
    from bench.runner import eval_key
    from bench.synthetic import SyntheticSet
    from bench.version import code_version

    syn = SyntheticSet.load(args.synthetic)
    meta = syn.metadata
    dataset = meta.get("dataset")
    if not dataset:
        raise BenchError(f"{args.synthetic} does not record its dataset")
    for arch in args.arch:
        model_name_ok(arch)
    if args.results:  # what will be written to is checked before any compute is spent
        check_writable(args.results, "--results", directory=True)
        table = ResultsTable(args.results)
        check_schema(table.load(), table.parquet)
    data = load_dataset(dataset, args.data_root, args.download)
    check_compatible(syn, data)
    protocol_name = args.protocol
    if protocol_name is None:
        method = meta.get("method")
        cfg_cls = get_method(method).config_cls if method and not meta.get("eval_protocol") else None
        protocol_name = meta.get("eval_protocol") or (getattr(cfg_cls, "eval_protocol", "dc") if cfg_cls else "dc")
        protocol_name = reference_protocol(protocol_name, dataset)  # DC on MNIST: dc-aug
    protocol = get_protocol(protocol_name, args.epochs)
    if args.lr is not None:
        protocol = dataclasses.replace(protocol, lr=args.lr, name=f"{protocol.name}@lr{args.lr:g}")
    device = resolve_device(args.device)
    rows = []
    for arch in args.arch:
        res = evaluate_synthetic(syn, data, arch, protocol, args.models, args.seed, device,
                                 progress=not args.no_progress)
        print(f"{meta.get('method', '?')} {dataset} IPC {meta.get('ipc', '?')} on {arch} ({protocol.name}): "
              f"last {res.last_mean:.2f} ± {res.last_std:.2f}%  "
              f"({args.models} models, {res.seconds:.1f}s)")
        dkey = meta.get("config_hash", "unknown")
        rows.append({
            "cell_key": eval_key(f"{dkey}/s{args.seed}", arch, protocol, args.models),
            "method": meta.get("method"), "dataset": dataset, "ipc": meta.get("ipc"), "seed": meta.get("seed"),
            "arch": arch, "protocol": protocol.name, "num_models": args.models,
            "acc_last": res.last_mean, "acc_last_std": res.last_std, "acc_best": res.best_mean,
            "acc_best_std": res.best_std, "distill_seconds": meta.get("seconds"), "eval_seconds": res.seconds,
            "code_version": code_version(), "config_hash": dkey, "synthetic_path": str(args.synthetic),
            # sets written before the split was recorded were distilled from the train-val split
            "train_split": meta.get("train_split", "train-val"),
        })
    if args.results:
        table = ResultsTable(args.results)
        table.append(rows)
        table.consolidate()
        print(f"results appended to {Path(args.results) / 'results.parquet'} (+ .csv)")


def cmd_show(args: argparse.Namespace) -> None:
    from bench.data import load_dataset
    from bench.paths import check_writable
    from bench.synthetic import SyntheticSet, save_picture

    if args.curves:
        from bench.curves import show_curves

        show_curves(args.synthetic, args.out)
        return
    syn = SyntheticSet.load(args.synthetic)
    check_writable(Path(args.out) if args.out else Path(args.synthetic).with_suffix(".png"), "--out")
    meta = syn.metadata
    if meta.get("dataset"):
        data = load_dataset(meta["dataset"])
        mean, std, names = data.mean, data.std, data.class_names
    else:
        c = syn.images.shape[1]
        mean, std, names = (0.5,) * c, (0.5,) * c, None
    out = Path(args.out) if args.out else Path(args.synthetic).with_suffix(".png")
    save_picture(syn, out, mean, std, names, args.max_per_class, args.decoded,
                 title=f"{meta.get('method', '')} {meta.get('dataset', '')} IPC {meta.get('ipc', '')}")
    print(f"picture: {out}")


def cmd_grid(args: argparse.Namespace) -> None:
    from bench.paths import check_writable
    from bench.results import ResultsTable, check_schema
    from bench.runner import GridSpec, run_grid

    from bench.errors import BenchError
    from bench.runner import FullDataJob, full_data_protocols

    if args.protocols and args.protocol != "default":
        raise BenchError("give --protocol or --protocols, not both")
    check_writable(args.out, "--out", directory=True)
    table = ResultsTable(args.out)
    check_schema(table.load(), table.parquet)
    spec = GridSpec(methods=args.methods, dataset=args.dataset, ipcs=args.ipc, seeds=args.seeds, archs=args.arch,
                    protocol=args.protocol, epochs=args.epochs, num_models=args.models, protocols=args.protocols,
                    data_root=args.data_root, download=args.download)
    full_jobs = [FullDataJob(args.dataset, args.arch[0], proto, args.device, str(Path(args.out).resolve()),
                             args.data_root, args.download, key=key)
                 for key, proto in full_data_protocols(spec, args.full_data_epochs)] if args.full_data_epochs else []
    df = run_grid(spec, args.out, args.device, progress=not args.no_progress, full_data=full_jobs,
                  tensorboard=args.tensorboard)
    sync_csv(Path(args.out))
    write_reports(Path(args.out), df)


def write_reports(out: Path, df, full: float | None = None) -> None:
    """Every table and figure of a results directory, from the stored rows and sets
    (accuracy tables, saturation figure, cross-architecture tables, set pictures, DASM diagnostics)."""
    from bench.plots import write_reports as write_all

    write_all(out, df, full)


def cmd_plot(args: argparse.Namespace) -> None:
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.results import ResultsTable, check_schema, repair_csv

    out = Path(args.results)
    table = ResultsTable(out)
    if not table.exists():
        raise BenchError(f"no results table in {out} (expected {table.parquet.name} or {table.cells.name}/)")
    check_writable(out, "results directory", directory=True)
    df = check_schema(table.load(), table.parquet)
    if repair_csv(table, df):
        print(f"{table.csv.name} was unreadable or stale: rewritten from the stored rows")
    write_reports(out, table.consolidate())  # a killed run's cells are in the regenerated table too


def cmd_sweep(args: argparse.Namespace) -> None:
    from bench.paths import check_writable
    from bench.sweep import SearchSpace, SweepSpec, run_sweep

    if args.out:
        check_writable(args.out, "--out", directory=True)
    space = SearchSpace(max_segments=args.max_segments, max_lo=args.max_lo, sample_first_window=args.sample_first_window,
                        sample_hi=args.sample_hi, lr_factor=args.lr_factor)
    spec = SweepSpec(dataset=args.dataset, ipc=args.ipc, base=args.base, trials=args.trials, seed=args.seed,
                     worker=args.worker, study=args.study, storage=args.storage, out=args.out, timeout=args.timeout,
                     overrides=_parse_sets(args.set), space=space, arch=args.arch, protocol=args.protocol,
                     eval_epochs=args.epochs, eval_models=args.models, prune_startup=args.prune_startup,
                     device=args.device, data_root=args.data_root, download=args.download)
    run_sweep(spec)


def cmd_budget(args: argparse.Namespace) -> None:
    from bench.budget_curves import BudgetSpec, run_budget
    from bench.errors import BenchError
    from bench.paths import check_writable

    check_writable(args.out, "--out", directory=True)  # before any compute

    overrides: dict[str, dict[str, str]] = {}
    for key, value in _parse_sets(args.set).items():
        method, dot, name = key.partition(".")
        if not dot or not method or not name:
            raise BenchError(f"--set expects METHOD.KEY=VALUE, got {key}={value}")
        overrides.setdefault(method, {})[name] = value
    spec = BudgetSpec(methods=args.methods, dataset=args.dataset, ipcs=args.ipc, seeds=args.seeds, rungs=args.rungs,
                      protocol="default" if args.protocol == "own" else args.protocol, epochs=args.epochs,
                      num_models=args.models, overrides=overrides, max_hours=args.max_hours,
                      data_root=args.data_root, download=args.download)
    run_budget(spec, args.out, args.device, workers=args.workers, progress=not args.no_progress)


COMMANDS = {"list": cmd_list, "distill": cmd_distill, "evaluate": cmd_evaluate, "show": cmd_show,
            "grid": cmd_grid, "plot": cmd_plot, "sweep": cmd_sweep, "budget": cmd_budget}


def cmd_run(args: argparse.Namespace) -> None:
    from bench.experiment import load_spec, plan_summary, run_experiment
    from bench.executors import SlurmOptions
    from bench.paths import check_writable
    from bench.results import ResultsTable, check_schema

    spec = load_spec(args.spec).subset(args.methods, args.ipc, args.seeds, args.arch)
    out = Path(args.out) if args.out is not None else spec.default_out
    table = ResultsTable(out)
    check_schema(table.load(), table.parquet)
    if args.plan:
        print(plan_summary(spec, args.out))
        return
    check_writable(out, "--out", directory=True)
    if args.executor == "slurm":
        check_slurm()
    slurm = SlurmOptions(partition=args.partition, timeout_min=args.time, gpus_per_job=args.gpus_per_job,
                         cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb)
    run_experiment(spec, out, args.device, workers=args.workers, executor=args.executor, threads=args.threads,
                   slurm=slurm, progress=not args.no_progress, data_root=args.data_root, download=args.download,
                   report=not args.no_report, tensorboard=args.tensorboard)
    sync_csv(out)


COMMANDS["run"] = cmd_run  # experiment specs (bench/experiment.py)


# ----------------------------------------------------------------------------- import, compare

def _add_import_compare(sub) -> None:
    p = sub.add_parser("import", help="turn a set published by another code base into a synthetic set")
    p.add_argument("source", help="MTT/DATM/TESLA folder (images_best.pt, labels_best.pt[, lr_best.pt]), "
                                  "a DC/DSA/DM result .pt, or an image folder (one sub-folder per class)")
    p.add_argument("--format", default="auto", choices=["auto", "mtt", "dc", "folder"],
                   help="source format (default: auto-detect)")
    p.add_argument("--dataset", required=True, help="the dataset the set was distilled from")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--method", default=None, help="name in results tables (default: imported-<format>)")
    p.add_argument("--index", type=non_negative_int, default=0, help="which experiment of a DC/DSA/DM result file (default: 0)")
    p.add_argument("--soft-labels", default="auto", choices=["auto", "probs", "logits"],
                   help="how stored K x C labels are read (default: probabilities if rows sum to 1, else logits)")
    p.add_argument("--seed", type=seed, default=None, help="the seed the source used, if known (recorded)")
    _add_data(p)

    p = sub.add_parser("compare", help="compare a run's results table with a reference one, cell by cell")
    p.add_argument("run", help="results directory of the run")
    p.add_argument("reference", help="reference results directory, e.g. results/demo")
    p.add_argument("--metric", default="acc_last", help="column compared (default: acc_last)")
    p.add_argument("--k-std", type=positive_float, default=2.0, help="tolerance in reference seed std's (default: 2)")
    p.add_argument("--k-images", type=positive_float, default=2.0, help="tolerance floor in test images (default: 2)")
    p.add_argument("--verbose", action="store_true", help="print every cell, then the summary line")


def cmd_import(args: argparse.Namespace) -> None:
    from bench.data import load_dataset
    from bench.importers import import_set
    from bench.paths import check_writable

    check_writable(Path(args.out), "--out")  # before any work
    data = load_dataset(args.dataset, args.data_root, args.download)
    syn = import_set(args.source, data, args.format, args.method, args.index, args.soft_labels, args.seed)
    path = syn.save(args.out)
    info = syn.metadata["import"]
    print(f"imported {len(syn)} images ({info['format']}, {info['labels']} labels, IPC {syn.metadata['ipc']}) "
          f"from {args.source} to {path}")


def cmd_compare(args: argparse.Namespace) -> None:
    from bench.compare import compare_main

    code = compare_main(args.run, args.reference, args.metric, args.k_std, args.k_images, args.verbose)
    if code:
        raise SystemExit(code)  # 1: the run disagrees with the reference (2 stays "bad input")


COMMANDS["import"] = cmd_import    # bench/importers.py
COMMANDS["compare"] = cmd_compare  # bench/compare.py


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; bad input (a :class:`BenchError`, or an OSError such as a read-only
    file system or a permission) is one line ``error: ...`` and exit 2, never a traceback.

    Example::

        main(["distill", "--method", "random", "--ipc", "1", "--out", "r.safetensors"])   # -> 0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) or --help: a code, like any command
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT if exc.code else 0
    try:
        from bench.datasets_torchvision import VERIFY_ENV
        from bench.errors import BenchError
        from bench.paths import describe_os_error
    except Exception as exc:  # pragma: no cover - a broken install
        print(f"error: dasm-bench cannot start: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # --no-verify-checksums reaches the loaders through the environment, so that worker processes
    # (spawned, submitit, Slurm) see it too; restored afterwards for in-process callers (tests)
    saved = os.environ.get(VERIFY_ENV)
    if getattr(args, "no_verify_checksums", False):
        os.environ[VERIFY_ENV] = "0"
    saved_accel = {env: os.environ.get(env) for env in _ACCELERATION_ENV.values()}
    try:
        try:
            _apply_acceleration(args)
            COMMANDS[args.command](args)
        except (BenchError, KeyboardInterrupt):
            raise
        except Exception:
            # checked only after a failure: importing torchvision up front costs seconds of start-up
            # that `list` and bad-input errors never use; a mismatched build fails here in one line
            _check_torchvision()
            raise
    except BenchError as exc:
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a read-only file system, a permission, a path through a file, a full disk
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; finished cells are kept, rerun to continue", file=sys.stderr)
        return 130
    finally:
        if saved is None:
            os.environ.pop(VERIFY_ENV, None)
        else:
            os.environ[VERIFY_ENV] = saved
        for env, value in saved_accel.items():
            if value is None:
                os.environ.pop(env, None)
            else:
                os.environ[env] = value
    return 0


def _apply_acceleration(args: argparse.Namespace) -> None:
    """--compile/--amp/--channels-last reach the workers through the environment (as the checksum flag
    does); bf16 and channels_last forced on a run that is not on CUDA are a one-line error up front."""
    given = {k: getattr(args, k) for k in _ACCELERATION_ENV if getattr(args, k, None) is not None}
    for key, value in given.items():
        os.environ[_ACCELERATION_ENV[key]] = value
    if given.keys() & {"amp", "channels_last"}:
        from bench.acceleration import Acceleration, check_for_device

        check_for_device(Acceleration.from_env(), getattr(args, "device", "auto"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
