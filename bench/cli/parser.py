"""The ``dasm-bench`` argument parser: every sub-command's options (``bench.cli.main`` runs them).

Options shared by several commands are added by one helper each (``_add_execution``,
``_add_data``, ``_add_grid_axes``, ``_add_eval_budget``, ``_add_tensorboard``), so a flag means
the same everywhere. Values are checked where they are parsed (``bench.cli.checks``).

Example::

    args = build_parser().parse_args(["distill", "--method", "random", "--ipc", "1"])
"""

from __future__ import annotations

import argparse
import sys

from bench.bounds import MAX_COUNT, MAX_EPOCHS, MAX_IPC, MAX_LR, MAX_MODELS, MAX_WORKERS
from bench.cli.checks import (
    bounded_float,
    bounded_int,
    finite_float,
    int_list,
    non_negative_int,
    positive_int,
    seed,
    seed_list,
    str_list,
)
from bench.protocols import PROTOCOLS

# every number on the command line has a range, stated in its error message (bench/bounds.py)
ipc_int = bounded_int(1, MAX_IPC)
epochs_int = bounded_int(1, MAX_EPOCHS)
models_int = bounded_int(1, MAX_MODELS)
workers_int = bounded_int(1, MAX_WORKERS)
lr_float = bounded_float(0, MAX_LR)
seconds_float = bounded_float(0, 1e9)        # --timeout (about 30 years)
hours_float = bounded_float(0, 1e6)
tolerance_float = bounded_float(0, 1e6)      # compare's --k-std / --k-images

EXIT_BAD_INPUT = 2


def protocol_help(default: str, own: bool = False) -> str:
    """The --protocol help text: every protocol in the registry (bench.protocols, read when the
    parser is built, so a new protocol shows up in every --help), and the default."""
    names = " | ".join(PROTOCOLS)
    choices = f"own (each method's own) | {names}" if own else names
    return f"evaluation protocol: {choices}; a name may carry a budget, e.g. dc-nodsa@300ep (default: {default})"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line and exit 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


# ----------------------------------------------------------------------------- shared option blocks

def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="where real datasets live (default: $DASM_DATA or ~/.cache)")
    p.add_argument("--download", action="store_true", help="download a missing torchvision dataset")
    p.add_argument("--no-verify-checksums", action="store_true",
                   help="skip comparing CIFAR-10/100 and SVHN files with their published MD5s (for re-packed "
                        "copies); the files are still parsed without running any code from them")


def _add_execution(p: argparse.ArgumentParser, with_seed: bool = False, progress: bool = True,
                   seed_help: str = "random seed (default: 0)") -> None:
    """--device [--seed], the data options and --no-progress: where and how a command computes."""
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    if with_seed:
        p.add_argument("--seed", type=seed, default=0, help=seed_help)
    _add_data(p)
    if progress:
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_grid_axes(p: argparse.ArgumentParser, methods_help: str | None = None) -> None:
    """--methods, --dataset, --ipc, --seeds: a methods x IPC x seeds grid on one dataset."""
    p.add_argument("--methods", type=str_list, required=True,
                   help=methods_help or "comma-separated methods, e.g. random,herding,dm "
                                        "(see `dasm-bench list methods`)")
    p.add_argument("--dataset", default="digits", help="dataset to distill and test on (default: digits)")
    p.add_argument("--ipc", type=int_list, required=True, help="comma-separated images per class, e.g. 1,10,50")
    p.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated seeds, one set per seed (default: 0)")


def _add_eval_budget(p: argparse.ArgumentParser, models: int = 5, what: str = "set") -> None:
    """--epochs and --models: how long and how many fresh models an evaluation trains."""
    p.add_argument("--epochs", type=epochs_int, default=None, help="override the evaluation protocol's epochs")
    p.add_argument("--models", type=models_int, default=models, help=f"fresh models per {what} (default: {models})")


def _add_acceleration(p: argparse.ArgumentParser) -> None:
    """--compile/--amp/--channels-last: runtime speed options (bench/train/acceleration.py), never in a cell's key;
    passed to workers through the environment (``ACCELERATION_ENV``)."""
    p.add_argument("--compile", choices=["auto", "on", "off"], default=None,
                   help="torch.compile the evaluation training step (default: auto = on CPU for ConvNet runs "
                        "long enough to pay for the compile)")
    p.add_argument("--amp", choices=["off", "bf16"], default=None, help="bf16 autocast of evaluation training "
                   "(CUDA only; default: off, or the spec's [runtime] on CUDA)")
    p.add_argument("--channels-last", choices=["on", "off"], default=None,
                   help="channels_last evaluation training (CUDA only; default: off, or the spec's [runtime] on CUDA)")


ACCELERATION_ENV = {"compile": "DASM_COMPILE", "amp": "DASM_AMP", "channels_last": "DASM_CHANNELS_LAST"}


def _add_tensorboard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also write TensorBoard event files here: each cell's accuracy and its set's stored "
                        "curves (needs the tensorboard package)")


def _add_sets(p: argparse.ArgumentParser, metavar: str, help: str) -> None:
    p.add_argument("--set", action="append", metavar=metavar, help=help)


# ----------------------------------------------------------------------------- the parser

class _VersionAction(argparse.Action):
    """``--version``: the code version every set and row records (package version + git commit);
    computed only when asked, so building the parser runs no git."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        from bench.version import code_version

        print(f"{parser.prog} {code_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command and its options."""
    parser = _Parser(prog="dasm-bench", description="Dataset distillation benchmark harness (DASM).")
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version (package version, and the git commit in a checkout) and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_list, _add_distill, _add_evaluate, _add_show, _add_grid, _add_budget, _add_plot, _add_run,
                _add_sweep, _add_import, _add_published, _add_compare, _add_cost):
        add(sub)
    return parser


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="list methods, datasets and architectures")
    p.add_argument("what", nargs="?", choices=["methods", "datasets", "archs", "all"], default="all",
                   help="what to list (default: all)")
    p.add_argument("--filter", default=None, help="wildcard for timm architectures, e.g. 'resnet*'")


def _add_distill(sub) -> None:
    p = sub.add_parser("distill", help="distill a synthetic set and save it (safetensors + JSON)")
    p.add_argument("--method", required=True, help="distillation method (see `dasm-bench list methods`)")
    p.add_argument("--dataset", default="digits", help="dataset to distill (default: digits)")
    p.add_argument("--ipc", type=ipc_int, required=True, help="images per class")
    _add_sets(p, "KEY=VALUE", "override a config field (repeatable)")
    p.add_argument("--config", default=None, help="JSON file of config fields (e.g. an exported sweep result)")
    p.add_argument("--out", default=None,
                   help="output .safetensors (default: results/synthetic/<method>-<dataset>-ipc<N>-s<seed>)")
    p.add_argument("--picture", action="store_true", help="also save a PNG grid next to the set")
    p.add_argument("--train-split", choices=["full", "train-val"], default="full",
                   help="full: the whole training set (reproduction, default); train-val: hold out val (tuning)")
    _add_execution(p, with_seed=True)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="train fresh models on a synthetic set, test on the real test split")
    p.add_argument("synthetic", help="path of a .safetensors synthetic set")
    p.add_argument("--arch", default="convnet", type=str_list, help="comma-separated architectures")
    p.add_argument("--protocol", default=None, help=protocol_help("the method's own"))
    _add_eval_budget(p)
    p.add_argument("--lr", type=lr_float, default=None,
                   help="override the protocol's learning rate (also a set's learned one)")
    p.add_argument("--hard-labels", action="store_true",
                   help="train on the argmax of soft (K x C) labels instead of the soft labels themselves")
    p.add_argument("--results", default=None, help="append rows to the results table in this directory")
    _add_acceleration(p)
    _add_execution(p, with_seed=True)


def _add_show(sub) -> None:
    p = sub.add_parser("show", help="save a picture of a synthetic set (a row per class)")
    p.add_argument("synthetic", help="path of a .safetensors synthetic set")
    p.add_argument("--out", default=None, help="PNG path (default: next to the set)")
    p.add_argument("--decoded", action="store_true", help="show decoded (multi-formation) images")
    p.add_argument("--max-per-class", type=bounded_int(1, 1_000), default=20,
                   help="images shown per class (default: 20)")
    p.add_argument("--curves", action="store_true",
                   help="plot the matching-loss and validation curves stored in the set's metadata instead")


def _add_grid(sub) -> None:
    p = sub.add_parser("grid", help="distill and evaluate a methods x IPC x seeds grid, then plot it")
    _add_grid_axes(p)
    p.add_argument("--arch", type=str_list, default=["convnet"],
                   help="comma-separated evaluation architectures; the first also trains the full-data line "
                        "(default: convnet)")
    p.add_argument("--protocol", default="own", help=protocol_help("own", own=True))
    p.add_argument("--protocols", type=str_list, default=[],
                   help="evaluate every set under several protocols, e.g. own,idc (own: the method's own); "
                        "random and full data under every protocol that appears")
    _add_eval_budget(p)
    p.add_argument("--full-data-epochs", type=epochs_int, default=None,
                   help="train the full-data reference line (a network on the whole training split) for "
                        "this many epochs (default: no full-data line)")
    p.add_argument("--out", required=True, help="results directory")
    _add_execution(p)
    _add_acceleration(p)
    _add_tensorboard(p)


def _add_budget(sub) -> None:
    p = sub.add_parser("budget", help="budget curves: each method at x1, x2, x4, ... its distillation budget")
    _add_grid_axes(p, "methods with a budget, e.g. dc,dm,idc,mtt,dasm")
    p.add_argument("--rungs", type=int_list, default=[1, 2, 4, 8], help="budget multipliers (default: 1,2,4,8)")
    p.add_argument("--train-split", choices=["train-val", "full"], default="train-val",
                   help="training pool of every rung (default: train-val, whose validation split chooses the "
                        "rung; full: the whole training set, rungs reported but none chosen)")
    p.add_argument("--protocol", default="own", help=protocol_help("own", own=True))
    _add_eval_budget(p)
    _add_sets(p, "METHOD.KEY=VALUE",
              "set a method's x1 config field, e.g. dasm.base=idc or dm.iterations=100 (repeatable)")
    p.add_argument("--max-hours", type=hours_float, default=None, help="start no rung projected to end after H hours")
    p.add_argument("--workers", type=workers_int, default=1, help="tasks at once (default: 1; more share the CPU "
                                                                   "and inflate the measured seconds)")
    p.add_argument("--out", required=True, help="results directory")
    _add_execution(p)


def _add_plot(sub) -> None:
    p = sub.add_parser("plot", help="regenerate tables and figures of a results directory (no recomputation)")
    p.add_argument("results", help="results directory")


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="run an experiment spec (TOML): every missing cell, then tables and figures")
    p.add_argument("spec", help="spec file, or the name of a shipped one, e.g. ipc-saturation-digits")
    p.add_argument("--out", default=None, help="results directory (default: the spec's `out`, else results/<dataset>)")
    p.add_argument("--workers", type=workers_int, default=None,
                   help="tasks at once (default: one per CPU core, one per GPU on CUDA, 64 jobs on Slurm; "
                        "1 = all in this process)")
    p.add_argument("--threads", type=workers_int, default=None,
                   help="torch threads per worker (default: cores / workers)")
    p.add_argument("--executor", choices=["local", "submitit-local", "slurm"], default="local",
                   help="local processes (default), submitit's local executor, or Slurm through submitit")
    p.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's default partition)")
    p.add_argument("--time", type=bounded_int(1, 525_600), default=None,
                   help="Slurm time limit per job in minutes (default: 240, or the partition's limit if lower)")
    p.add_argument("--gpus-per-job", type=bounded_int(0, 64), default=0, help="GPUs per Slurm job (default: 0)")
    p.add_argument("--cpus-per-job", type=workers_int, default=None,
                   help="CPUs (and torch threads) per Slurm job (default: 4, or a node's CPUs if fewer)")
    p.add_argument("--mem-gb", type=bounded_int(1, 65_536), default=None,
                   help="memory per Slurm job in GB (default: Slurm's)")
    p.add_argument("--methods", type=str_list, default=None, help="run only these of the spec's methods")
    p.add_argument("--ipc", type=int_list, default=None, help="run only these of the spec's IPCs")
    p.add_argument("--seeds", type=seed_list, default=None, help="replace the spec's seeds")
    p.add_argument("--arch", type=str_list, default=None, help="run only these of the spec's architectures")
    p.add_argument("--plan", action="store_true", help="print the grid and what is already done, run nothing")
    p.add_argument("--no-report", action="store_true", help="skip regenerating tables and figures at the end")
    _add_acceleration(p)
    _add_tensorboard(p)
    _add_execution(p)


def _add_sweep(sub) -> None:
    p = sub.add_parser("sweep", help="Optuna sweep of DASM's segment schedule, scored on the validation split")
    p.add_argument("--dataset", default="digits", help="dataset to distill and score on (default: digits)")
    p.add_argument("--ipc", type=ipc_int, required=True, help="images per class")
    p.add_argument("--base", default="idc", help="the base matcher of every segment (default: idc)")
    p.add_argument("--trials", type=positive_int, default=20, help="trials THIS worker runs (default: 20)")
    p.add_argument("--timeout", type=seconds_float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--study", default=None, help="study name (default: dasm-<base>-<dataset>-ipc<N>)")
    p.add_argument("--storage", default=None,
                   help="SQLAlchemy URL, e.g. postgresql+psycopg2://user@host/db for many workers "
                        "(default: sqlite:///<out>/study.db)")
    p.add_argument("--out", default=None, help="directory for best.json, trials.csv, plots "
                                               "(default: results/sweeps/<study>)")
    p.add_argument("--worker", type=bounded_int(0, MAX_WORKERS), default=0,
                   help="this worker's index: its own sampler stream (default: 0)")
    _add_sets(p, "KEY=VALUE", "fix a DASM config field, e.g. base_overrides=iterations=50 or difficulty_epochs=50")
    p.add_argument("--max-segments", type=bounded_int(1, MAX_IPC), default=4,
                   help="largest K sampled (default: 4, at most IPC)")
    p.add_argument("--max-lo", type=finite_float, default=0.75, help="largest window start sampled (default: 0.75)")
    p.add_argument("--sample-hi", action="store_true", help="also sample each window's upper end (default: 1)")
    p.add_argument("--sample-first-window", action="store_true", help="also sample segment 1's window")
    p.add_argument("--lr-factor", type=finite_float, default=10.0,
                   help="sample lr_img in [default/F, default*F], log scale; 1 = do not sweep it (default: 10)")
    p.add_argument("--arch", default="convnet", help="evaluation architecture (default: convnet)")
    p.add_argument("--protocol", default=None, help=protocol_help("the base's own"))
    _add_eval_budget(p, models=2, what="trial evaluation")
    p.add_argument("--prune-startup", type=non_negative_int, default=3,
                   help="completed trials before pruning starts (default: 3)")
    _add_execution(p, with_seed=True, progress=False,
                   seed_help="distillation, evaluation and sampler seed (default: 0)")


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="turn a set published by another code base into a synthetic set")
    p.add_argument("source", help="MTT/DATM/TESLA folder (images_<it>.pt, labels_<it>.pt[, lr_<it>.pt]), "
                                  "a DD-Ranking folder (images.pt, labels.pt[, lr.pt]), a DC/DSA/DM result .pt, "
                                  "or an image folder (one sub-folder per class)")
    p.add_argument("--format", default="auto", choices=["auto", "mtt", "ddranking", "dc", "folder"],
                   help="source format (default: auto-detect)")
    p.add_argument("--iteration", default=None,
                   help="which MTT save: best or an iteration number (default: best, else the only one)")
    p.add_argument("--zca", action=argparse.BooleanOptionalAction, default=None,
                   help="the images are ZCA-whitened (the source's --zca); default: detected from the "
                        "source's names, with a note")
    p.add_argument("--dataset", required=True, help="the dataset the set was distilled from")
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--method", default=None, help="name in results tables (default: imported-<format>)")
    p.add_argument("--index", type=bounded_int(0, MAX_COUNT), default=0,
                   help="which experiment of a DC/DSA/DM result file (default: 0)")
    p.add_argument("--soft-labels", default="auto", choices=["auto", "probs", "logits"],
                   help="how stored K x C labels are read (default: probabilities if rows sum to 1, else logits)")
    p.add_argument("--seed", type=seed, default=None, help="the seed the source used, if known (recorded)")
    _add_data(p)


def _add_published(sub) -> None:
    p = sub.add_parser("published", help="import every published set in a folder, evaluate each under its "
                                         "source's protocol, write a measured-vs-reported table")
    p.add_argument("root", help="folder with one sub-folder per published set (and a README.md table)")
    p.add_argument("--dataset", required=True, help="the dataset the sets were distilled from")
    p.add_argument("--out", required=True, help="output directory (sets/, published.csv, published.md)")
    p.add_argument("--arch", default="convnet", help="evaluation architecture (default: convnet)")
    _add_eval_budget(p)
    _add_acceleration(p)
    _add_execution(p, with_seed=True)


def _add_compare(sub) -> None:
    p = sub.add_parser("compare", help="compare a run's results table with a reference one, cell by cell")
    p.add_argument("run", help="results directory of the run")
    p.add_argument("reference", help="reference results directory, e.g. results/demo")
    p.add_argument("--metric", default="acc_last", help="column compared (default: acc_last)")
    p.add_argument("--k-std", type=tolerance_float, default=2.0, help="tolerance in reference seed std's (default: 2)")
    p.add_argument("--k-images", type=tolerance_float, default=2.0, help="tolerance floor in test images (default: 2)")
    p.add_argument("--verbose", action="store_true", help="print every cell, then the summary line")


def _add_cost(sub) -> None:
    p = sub.add_parser("cost", help="measure CPU-seconds per outer iteration, expert epoch and evaluation epoch "
                                    "of each method, and extrapolate the reference budgets' hours")
    p.add_argument("--dataset", default="digits", help="dataset to time on (default: digits; CIFAR-10: cifar10-jpeg)")
    p.add_argument("--out", required=True, help="output directory (cost.csv, cost_raw.csv, cost.md)")
    p.add_argument("--methods", type=str_list, default=["dc", "dsa", "dm", "idc", "mtt"],
                   help="distillers to time (default: dc,dsa,dm,idc,mtt)")
    p.add_argument("--ipc", type=int_list, default=[1, 10, 50], help="IPCs (default: 1,10,50)")
    p.add_argument("--eval-ipc", type=int_list, default=None,
                   help="IPCs whose evaluation epochs are timed (default: those of --ipc)")
    p.add_argument("--protocols", type=str_list, default=["dc", "dc-nodsa"],
                   help="evaluation protocols whose epochs are timed (default: dc,dc-nodsa)")
    p.add_argument("--repeats", type=positive_int, default=5, help="alternating runs per size (default: 5)")
    p.add_argument("--repeats-at", type=str_list, default=[],
                   help="fewer runs at costly IPCs, IPC=RUNS pairs, e.g. 10=1,50=1")
    p.add_argument("--threads", type=workers_int, default=1, help="torch threads (default: 1)")
    p.add_argument("--roofline", action="store_true",
                   help="also count each unit's FLOPs and measure the machine's peak (peak.csv): GFLOP/s and "
                        "%% of peak per unit (bench/perf/roofline.py)")
    _add_data(p)
