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
import json
import sys
from pathlib import Path
from typing import Sequence

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


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _str_list(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


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
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--data-root", default=None, help="where real datasets live (default: $DASM_DATA or ~/.cache)")
    p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


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
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field (repeatable)")
    p.add_argument("--config", default=None, help="JSON file of config fields (e.g. an exported sweep result)")
    p.add_argument("--out", default=None, help="output .safetensors (default: results/synthetic/<method>-<dataset>-ipc<N>-s<seed>)")
    p.add_argument("--picture", action="store_true", help="also save a PNG grid next to the set")
    _add_common(p)

    p = sub.add_parser("evaluate", help="train fresh models on a synthetic set, test on the real test split")
    p.add_argument("synthetic", help="path of a .safetensors synthetic set")
    p.add_argument("--arch", default="convnet", type=_str_list, help="comma-separated architectures")
    p.add_argument("--protocol", default=None, help="dc | dc-nodsa | idc (default: the method's own)")
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    p.add_argument("--lr", type=float, default=None, help="override the protocol's learning rate")
    p.add_argument("--models", type=int, default=5, help="number of fresh models (default: 5)")
    p.add_argument("--results", default=None, help="append rows to the results table in this directory")
    _add_common(p)

    p = sub.add_parser("show", help="save a picture of a synthetic set (a row per class)")
    p.add_argument("synthetic")
    p.add_argument("--out", default=None, help="PNG path (default: next to the set)")
    p.add_argument("--decoded", action="store_true", help="show decoded (multi-formation) images")
    p.add_argument("--max-per-class", type=int, default=20)

    p = sub.add_parser("grid", help="distill and evaluate a methods x IPC x seeds grid, then plot it")
    p.add_argument("--methods", type=_str_list, required=True)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=_int_list, required=True)
    p.add_argument("--seeds", type=_int_list, default=[0])
    p.add_argument("--arch", type=_str_list, default=["convnet"])
    p.add_argument("--protocol", default="default")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--models", type=int, default=5)
    p.add_argument("--full-data-epochs", type=int, default=None, help="epochs of the full-data reference line")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument("--download", action="store_true")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("budget", help="budget curves: each method at x1, x2, x4, ... its distillation budget")
    p.add_argument("--methods", type=_str_list, required=True, help="methods with a budget, e.g. dc,dm,idc,mtt,dasm")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=_int_list, required=True)
    p.add_argument("--seeds", type=_int_list, default=[0])
    p.add_argument("--rungs", type=_int_list, default=[1, 2, 4, 8], help="budget multipliers (default: 1,2,4,8)")
    p.add_argument("--protocol", default="own", help="evaluation protocol (default: own = each method's)")
    p.add_argument("--epochs", type=int, default=None, help="override the protocol's epochs")
    p.add_argument("--models", type=int, default=5, help="fresh models per set (default: 5)")
    p.add_argument("--set", action="append", metavar="METHOD.KEY=VALUE",
                   help="set a method's x1 config field, e.g. dasm.base=idc or dm.iterations=100 (repeatable)")
    p.add_argument("--max-hours", type=float, default=None, help="start no rung projected to end after H hours")
    p.add_argument("--workers", type=int, default=1, help="tasks at once (default: 1; more share the CPU "
                                                         "and inflate the measured seconds)")
    p.add_argument("--out", required=True, help="results directory")
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    p.add_argument("--download", action="store_true")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("plot", help="regenerate tables and figures of a results directory (no recomputation)")
    p.add_argument("results", help="results directory")

    p = sub.add_parser("run", help="run an experiment spec (TOML): every missing cell, then tables and figures")
    p.add_argument("spec", help="spec file, or the name of a shipped one, e.g. ipc-saturation-digits")
    p.add_argument("--out", default=None, help="results directory (default: the spec's `out`, else results/<dataset>)")
    p.add_argument("--workers", type=int, default=None,
                   help="tasks at once (default: one per CPU core, one per GPU on CUDA, 64 jobs on Slurm; "
                        "1 = all in this process)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    p.add_argument("--executor", choices=["local", "submitit-local", "slurm"], default="local",
                   help="local processes (default), submitit's local executor, or Slurm through submitit")
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--time", type=int, default=240, help="Slurm time limit per job in minutes (default: 240)")
    p.add_argument("--gpus-per-job", type=int, default=0, help="GPUs per Slurm job (default: 0)")
    p.add_argument("--cpus-per-job", type=int, default=4, help="CPUs per Slurm job (default: 4)")
    p.add_argument("--mem-gb", type=int, default=None, help="memory per Slurm job in GB")
    p.add_argument("--methods", type=_str_list, default=None, help="run only these of the spec's methods")
    p.add_argument("--ipc", type=_int_list, default=None, help="run only these of the spec's IPCs")
    p.add_argument("--seeds", type=_int_list, default=None, help="replace the spec's seeds")
    p.add_argument("--arch", type=_str_list, default=None, help="run only these of the spec's architectures")
    p.add_argument("--plan", action="store_true", help="print the grid and what is already done, run nothing")
    p.add_argument("--no-report", action="store_true", help="skip regenerating tables and figures at the end")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--download", action="store_true")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("sweep", help="Optuna sweep of DASM's segment schedule, scored on the validation split")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--base", default="idc", help="the base matcher of every segment (default: idc)")
    p.add_argument("--trials", type=int, default=20, help="trials THIS worker runs (default: 20)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--study", default=None, help="study name (default: dasm-<base>-<dataset>-ipc<N>)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db for many workers "
                        "(default: sqlite:///<out>.db)")
    p.add_argument("--out", default=None, help="directory for best.json, trials.csv, plots "
                                               "(default: results/sweeps/<study>)")
    p.add_argument("--worker", type=int, default=0, help="this worker's index: its own sampler stream (default: 0)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="fix a DASM config field, e.g. base_overrides=iterations=50 or difficulty_epochs=50")
    p.add_argument("--max-segments", type=int, default=4, help="largest K sampled (default: 4, at most IPC)")
    p.add_argument("--max-lo", type=float, default=0.75, help="largest window start sampled (default: 0.75)")
    p.add_argument("--sample-hi", action="store_true", help="also sample each window's upper end (default: 1)")
    p.add_argument("--sample-first-window", action="store_true", help="also sample segment 1's window")
    p.add_argument("--lr-factor", type=float, default=10.0,
                   help="sample lr_img in [default/F, default*F], log scale; 1 = do not sweep it (default: 10)")
    p.add_argument("--arch", default="convnet", help="evaluation architecture (default: convnet)")
    p.add_argument("--protocol", default=None, help="dc | dc-nodsa | idc (default: the base's own)")
    p.add_argument("--epochs", type=int, default=None, help="override the evaluation protocol's epochs")
    p.add_argument("--models", type=int, default=2, help="fresh models per trial evaluation (default: 2)")
    p.add_argument("--prune-startup", type=int, default=3, help="completed trials before pruning starts (default: 3)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="distillation, evaluation and sampler seed (default: 0)")
    p.add_argument("--data-root", default=None, help="where real datasets live (default: $DASM_DATA or ~/.cache)")
    p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
    return parser


# ----------------------------------------------------------------------------- commands

def cmd_list(args: argparse.Namespace) -> None:
    from bench.data import list_datasets
    from bench.models import list_architectures
    from bench.registry import list_methods

    if args.what in ("methods", "all"):
        print("methods:")
        for name, spec in list_methods().items():
            print(f"  {name:<14} {spec.kind:<9} {spec.description}")
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
    from bench.errors import BenchError
    from bench.evaluation import resolve_device
    from bench.registry import DistillRequest, distill, get_method
    from bench.synthetic import save_picture

    get_method(args.method)
    data = load_dataset(args.dataset, args.data_root, args.download)
    data.check_ipc(args.ipc)
    overrides: dict = {}
    if args.config:
        try:
            loaded = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchError(f"cannot read config {args.config}: {exc}") from None
        overrides.update(loaded.get("config", loaded))
    overrides.update(_parse_sets(args.set))
    device = resolve_device(args.device)
    out = Path(args.out or f"results/synthetic/{args.method}-{args.dataset}-ipc{args.ipc}-s{args.seed}.safetensors")
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
    from bench.evaluation import evaluate_synthetic, get_protocol, resolve_device
    from bench.models import model_name_ok
    from bench.registry import get_method
    from bench.results import ResultsTable
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
    if args.models < 1:
        raise BenchError(f"--models must be >= 1, got {args.models}")
    data = load_dataset(dataset, args.data_root, args.download)
    protocol_name = args.protocol
    if protocol_name is None:
        method = meta.get("method")
        cfg_cls = get_method(method).config_cls if method else None
        protocol_name = meta.get("eval_protocol") or (getattr(cfg_cls, "eval_protocol", "dc") if cfg_cls else "dc")
    protocol = get_protocol(protocol_name, args.epochs)
    if args.lr is not None:
        protocol = dataclasses.replace(protocol, lr=args.lr, name=f"{protocol.name}@lr{args.lr:g}")
    device = resolve_device(args.device)
    rows = []
    for arch in args.arch:
        res = evaluate_synthetic(syn, data, arch, protocol, args.models, args.seed, device,
                                 progress=not args.no_progress)
        print(f"{meta.get('method', '?')} {dataset} IPC {meta.get('ipc', '?')} on {arch} ({protocol.name}): "
              f"last {res.last_mean:.2f} ± {res.last_std:.2f}%  best {res.best_mean:.2f} ± {res.best_std:.2f}%  "
              f"({args.models} models, {res.seconds:.1f}s)")
        dkey = meta.get("config_hash", "unknown")
        rows.append({
            "cell_key": eval_key(f"{dkey}/s{args.seed}", arch, protocol, args.models),
            "method": meta.get("method"), "dataset": dataset, "ipc": meta.get("ipc"), "seed": meta.get("seed"),
            "arch": arch, "protocol": protocol.name, "num_models": args.models,
            "acc_last": res.last_mean, "acc_last_std": res.last_std, "acc_best": res.best_mean,
            "acc_best_std": res.best_std, "distill_seconds": meta.get("seconds"), "eval_seconds": res.seconds,
            "code_version": code_version(), "config_hash": dkey, "synthetic_path": str(args.synthetic),
        })
    if args.results:
        table = ResultsTable(args.results)
        table.append(rows)
        table.consolidate()
        print(f"results appended to {Path(args.results) / 'results.parquet'} (+ .csv)")


def cmd_show(args: argparse.Namespace) -> None:
    from bench.data import load_dataset
    from bench.synthetic import SyntheticSet, save_picture

    syn = SyntheticSet.load(args.synthetic)
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
    from bench.runner import GridSpec, run_grid

    spec = GridSpec(methods=args.methods, dataset=args.dataset, ipcs=args.ipc, seeds=args.seeds, archs=args.arch,
                    protocol=args.protocol, epochs=args.epochs, num_models=args.models,
                    data_root=args.data_root, download=args.download)
    df = run_grid(spec, args.out, args.device, progress=not args.no_progress)
    full = None
    if args.full_data_epochs:
        from bench.data import load_dataset
        from bench.evaluation import full_data_accuracy, get_protocol, resolve_device

        data = load_dataset(args.dataset, args.data_root, args.download)
        proto = get_protocol("dc-nodsa", args.full_data_epochs)
        full = full_data_accuracy(data, args.arch[0], proto, device=resolve_device(args.device),
                                  cache_dir=Path(args.out) / "cache").last_mean
        (Path(args.out) / "full_data.json").write_text(json.dumps(
            {"dataset": args.dataset, "arch": args.arch[0], "protocol": proto.name, "acc": full}, indent=2))
    write_reports(Path(args.out), df, full)


def write_reports(out: Path, df, full: float | None = None) -> None:
    """Every table and figure of a results directory, from the stored rows and sets
    (accuracy tables, saturation figure, cross-architecture tables, set pictures, DASM diagnostics)."""
    from bench.plots import write_reports as write_all

    write_all(out, df, full)


def cmd_plot(args: argparse.Namespace) -> None:
    from bench.errors import BenchError
    from bench.results import ResultsTable

    out = Path(args.results)
    table = ResultsTable(out)
    if not table.exists():
        raise BenchError(f"no results table in {out} (expected {table.parquet.name} or {table.cells.name}/)")
    write_reports(out, table.consolidate())  # a killed run's cells are in the regenerated table too


def cmd_sweep(args: argparse.Namespace) -> None:
    from bench.sweep import SearchSpace, SweepSpec, run_sweep

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
    from bench.runner import SlurmOptions

    spec = load_spec(args.spec).subset(args.methods, args.ipc, args.seeds, args.arch)
    if args.plan:
        print(plan_summary(spec, args.out))
        return
    slurm = SlurmOptions(partition=args.partition, timeout_min=args.time, gpus_per_job=args.gpus_per_job,
                         cpus_per_job=args.cpus_per_job, mem_gb=args.mem_gb)
    run_experiment(spec, args.out, args.device, workers=args.workers, executor=args.executor, threads=args.threads,
                   slurm=slurm, progress=not args.no_progress, data_root=args.data_root, download=args.download,
                   report=not args.no_report)


COMMANDS["run"] = cmd_run  # experiment specs (bench/experiment.py)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from bench.errors import BenchError
    except Exception as exc:  # pragma: no cover - a broken install
        print(f"error: dasm-bench cannot start: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _check_torchvision()
        COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted; finished cells are kept, rerun to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
