"""``dasm-bench`` commands on one synthetic set or one results table: list, distill, evaluate,
show, import, compare (``bench.cli.main`` dispatches to them; each imports what it uses when run, so
``dasm-bench list`` stays light).

Example::

    cmd_distill(build_parser().parse_args(["distill", "--method", "random", "--ipc", "1"]))
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.checks import check_label, parse_sets, read_config, set_output


def cmd_list(args: argparse.Namespace) -> None:
    from bench.data.datasets import list_datasets
    from bench.methods.registry import method_summaries
    from bench.train.models import list_architectures

    if args.what in ("methods", "all"):
        print("methods:")
        for name, (kind, description) in method_summaries().items():  # read from source: no method imports
            print(f"  {name:<14} {kind:<9} {description}")
    if args.what in ("datasets", "all"):
        print("datasets:")
        for name, desc in list_datasets().items():
            print(f"  {name:<14} {desc}")
    if args.filter is not None and args.what in ("methods", "datasets"):
        from bench.errors import BenchError

        raise BenchError(f"--filter selects architectures; `dasm-bench list archs --filter {args.filter!r}`")
    if args.what in ("archs", "all"):
        archs = list_architectures(args.filter)
        if args.filter and archs == list_architectures("\0"):  # only the built-ins: say so, not just list them
            print(f"(no timm architecture matches {args.filter!r}; the built-in ones are always listed)")
        if args.what == "all" and not args.filter:
            shown = archs[:12]
            print(f"architectures ({len(archs)}; `dasm-bench list archs --filter 'vit*'` for more):")
            print("  " + ", ".join(shown) + ", ...")
        else:
            print("architectures:")
            for a in archs:
                print(f"  {a}")


def cmd_distill(args: argparse.Namespace) -> None:
    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest, apply_overrides, default_config, distill, get_method
    from bench.paths import safe_slug
    from bench.report.pictures import synthetic_picture
    from bench.train.evaluation import resolve_device

    get_method(args.method)
    overrides = read_config(args.config) if args.config else {}
    overrides.update(parse_sets(args.set))
    out = set_output(Path(f"results/synthetic/{safe_slug(args.method)}-{safe_slug(args.dataset)}-ipc{args.ipc}"
                          f"-s{args.seed}.safetensors" if args.out is None else args.out), args.out)  # before compute
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
        [png] = synthetic_picture(syn, path.with_suffix(".png"), data.mean, data.std, data.class_names,
                                  max_per_class=20, title=f"{args.method} IPC {args.ipc}", formats=("png",))
        print(f"picture: {png}")



def cmd_evaluate(args: argparse.Namespace) -> None:
    import dataclasses

    from bench.data.datasets import load_dataset
    from bench.errors import BenchError
    from bench.methods.registry import own_protocol
    from bench.paths import check_writable
    from bench.protocols import get_protocol
    from bench.spec.cells import eval_key
    from bench.store.results import ResultsTable, check_schema, results_row
    from bench.store.synthetic import SyntheticSet
    from bench.train.evaluation import check_compatible, evaluate_synthetic, resolve_device
    from bench.train.models import model_name_ok

    syn = SyntheticSet.load(args.synthetic)
    meta = syn.metadata
    dataset = meta.get("dataset")
    if not dataset:
        raise BenchError(f"{args.synthetic} does not record its dataset")
    for arch in args.arch:
        model_name_ok(arch)
    if args.results is not None:  # what will be written to is checked before any compute is spent ("" too)
        check_writable(args.results, "--results", directory=True)
        table = ResultsTable(args.results)
        check_schema(table.load(), table.parquet)
    data = load_dataset(dataset, args.data_root, args.download)
    check_compatible(syn, data)
    protocol_name = args.protocol if args.protocol is not None else own_protocol(meta, dataset)
    protocol = get_protocol(protocol_name, args.epochs)
    if args.lr is not None:  # over the set's learned lr too (`mtt`), not under it
        protocol = dataclasses.replace(protocol, lr=args.lr, lr_from_set=False, name=f"{protocol.name}@lr{args.lr:g}")
    if args.hard_labels and syn.labels.ndim == 2:  # the protocol's name keeps the cell apart from the soft one
        syn = dataclasses.replace(syn, labels=syn.hard_labels)
        protocol = dataclasses.replace(protocol, name=f"{protocol.name}@hard")
    device = resolve_device(args.device)
    rows = []
    for arch in args.arch:
        res = evaluate_synthetic(syn, data, arch, protocol, args.models, args.seed, device,
                                 progress=not args.no_progress)
        print(f"{meta.get('method', '?')} {dataset} IPC {meta.get('ipc', '?')} on {arch} ({protocol.name}): "
              f"last {res.last_mean:.2f} ± {res.last_std:.2f}%  "
              f"({args.models} models, {res.seconds:.1f}s)")
        # the grid's cell when this is the set's own seed, another cell (naming the seed) otherwise
        key = eval_key(meta.get("config_hash", "unknown"), arch, protocol, args.models, args.seed, meta.get("seed"))
        # (a set that does not record its split is from before the split was recorded: train-val)
        rows.append(results_row(syn, res, key, str(args.synthetic), args.models))
    if args.results:
        table = ResultsTable(args.results)
        table.append(rows)
        table.consolidate()
        print(f"results appended to {Path(args.results) / 'results.parquet'} (+ .csv)")


def cmd_show(args: argparse.Namespace) -> None:
    from bench.data.datasets import load_dataset
    from bench.paths import check_writable
    from bench.report.pictures import synthetic_picture
    from bench.store.synthetic import SyntheticSet

    if args.curves:
        from bench.report.curves import show_curves

        show_curves(args.synthetic, args.out)
        return
    syn = SyntheticSet.load(args.synthetic)
    check_writable(args.out if args.out is not None else Path(args.synthetic).with_suffix(".png"), "--out")
    meta = syn.metadata
    if meta.get("dataset"):
        data = load_dataset(meta["dataset"])
        mean, std, names = data.mean, data.std, data.class_names
    else:
        c = syn.images.shape[1]
        mean, std, names = (0.5,) * c, (0.5,) * c, None
    out = Path(args.out) if args.out else Path(args.synthetic).with_suffix(".png")
    [out] = synthetic_picture(syn, out, mean, std, names, args.max_per_class, decoded=args.decoded,
                              title=f"{meta.get('method', '')} {meta.get('dataset', '')} IPC {meta.get('ipc', '')}",
                              formats=(out.suffix.lstrip(".").lower() or "png",))
    print(f"picture: {out}")


def cmd_import(args: argparse.Namespace) -> None:
    from bench.data.datasets import load_dataset
    from bench.published.importers import import_set

    check_label(args.method, "--method")
    out = set_output(Path(args.out), args.out)  # before any work; the set and its sidecar
    data = load_dataset(args.dataset, args.data_root, args.download)
    syn = import_set(args.source, data, args.format, args.method, args.index, args.soft_labels, args.seed,
                     args.iteration, args.zca)
    path = syn.save(out)
    info = syn.metadata["import"]
    print(f"imported {len(syn)} images ({info['format']}, {info['labels']} labels, IPC {syn.metadata['ipc']}) "
          f"from {args.source} to {path}")
    print(info["zca"])


def cmd_published(args: argparse.Namespace) -> None:
    from bench.data.datasets import load_dataset
    from bench.paths import check_writable
    from bench.published.evaluate import evaluate_published
    from bench.train.evaluation import resolve_device
    from bench.train.models import model_name_ok

    model_name_ok(args.arch)
    check_writable(args.out, "--out", directory=True)  # before any work
    data = load_dataset(args.dataset, args.data_root, args.download)
    rows = evaluate_published(args.root, data, Path(args.out), args.arch, args.epochs, args.models,
                              args.seed, resolve_device(args.device), progress=not args.no_progress)
    for r in rows:
        print(f"{r.folder}: {r.measured_mean:.2f} ± {r.measured_std:.2f}% ({r.protocol}, lr {r.lr:g}); "
              f"reported {r.reported or '-'}")
    print(f"table: {Path(args.out) / 'published.md'} (+ published.csv)")


def cmd_cost(args: argparse.Namespace) -> None:
    import re

    import torch

    from bench.bounds import MAX_COUNT, MAX_IPC
    from bench.data.datasets import load_dataset
    from bench.errors import BenchError
    from bench.paths import check_writable
    from bench.perf.cost_model import TIMED_METHODS, machine_note, measure_costs, write_costs
    from bench.protocols import get_protocol

    unknown = [m for m in args.methods if m not in TIMED_METHODS]
    if unknown:
        raise BenchError(f"cost times {', '.join(TIMED_METHODS)}; not {', '.join(unknown)}")
    for name in args.protocols:  # an unknown one is refused before the distillers are timed, not after
        get_protocol(name)
    at = {}
    for pair in args.repeats_at:
        ipc, _, runs = pair.partition("=")
        # ASCII digits: str.isdigit() accepts "²", which int() refuses; both in range, like --ipc and --repeats
        if not (re.fullmatch(r"[0-9]{1,7}", ipc) and re.fullmatch(r"[0-9]{1,7}", runs)
                and 1 <= int(ipc) <= MAX_IPC and 1 <= int(runs) <= MAX_COUNT) or int(ipc) in at:
            raise BenchError(f"--repeats-at takes IPC=RUNS pairs, each IPC once, IPC in [1, {MAX_IPC}] and RUNS "
                             f"in [1, {MAX_COUNT}], got {pair!r}")
        at[int(ipc)] = int(runs)
    check_writable(args.out, "--out", directory=True)  # before any work
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset, args.data_root, args.download)
    for ipc in {*args.ipc, *(args.eval_ipc or ())}:  # an evaluation subset would be cut short without a word
        data.check_ipc(ipc)
    peak: list | None = [] if args.roofline else None

    def write(rows, raw):  # after every row: a stopped measurement keeps what it measured
        return write_costs(rows, raw, args.out, data.name, machine_note(), peak)

    rows, raw = measure_costs(data, args.methods, args.ipc, args.protocols, args.repeats, at,
                              report=lambda line: print(line, flush=True), checkpoint=write, peak=peak,
                              eval_ipcs=args.eval_ipc)
    for path in write(rows, raw):
        print(f"wrote {path}")


def cmd_compare(args: argparse.Namespace) -> None:
    from bench.report.compare import compare_main

    code = compare_main(args.run, args.reference, args.metric, args.k_std, args.k_images, args.verbose)
    if code:
        raise SystemExit(code)  # 1: the run disagrees with the reference (2 stays "bad input")
