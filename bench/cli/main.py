"""The ``dasm-bench`` command line: list, distill, evaluate, show, grid, run, budget, sweep, plot, import, compare.

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

Layout: ``bench.cli.parser`` (the options), ``bench.cli.sets`` and ``bench.cli.grids`` (the
commands), ``bench.cli.checks`` (argument types and pre-flight checks); this module dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from bench.cli.grids import cmd_budget, cmd_grid, cmd_plot, cmd_run, cmd_sweep
from bench.cli.parser import ACCELERATION_ENV, EXIT_BAD_INPUT, build_parser  # noqa: F401  (build_parser: for callers)
from bench.cli.sets import (
    cmd_compare,
    cmd_cost,
    cmd_distill,
    cmd_evaluate,
    cmd_import,
    cmd_list,
    cmd_published,
    cmd_show,
)

COMMANDS = {
    "list": cmd_list, "distill": cmd_distill, "evaluate": cmd_evaluate, "show": cmd_show,
    "grid": cmd_grid, "plot": cmd_plot, "sweep": cmd_sweep, "budget": cmd_budget,
    "run": cmd_run,            # experiment specs (bench/spec/experiment.py)
    "import": cmd_import,      # bench/published/importers.py
    "published": cmd_published,  # bench/published/evaluate.py
    "compare": cmd_compare,    # bench/report/compare.py
    "cost": cmd_cost,          # bench/perf/cost_model.py
}


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
        from bench.data.torchvision_sets import VERIFY_ENV
        from bench.errors import BenchError
        from bench.paths import describe_os_error
        from bench.train.allocator import tune_allocator
    except Exception as exc:  # pragma: no cover - a broken install
        print(f"error: dasm-bench cannot start: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    # --no-verify-checksums reaches the loaders through the environment, so that worker processes
    # (spawned, submitit, Slurm) see it too; restored afterwards for in-process callers (tests)
    saved = os.environ.get(VERIFY_ENV)
    if getattr(args, "no_verify_checksums", False):
        os.environ[VERIFY_ENV] = "0"
    saved_accel = {env: os.environ.get(env) for env in ACCELERATION_ENV.values()}
    try:
        try:
            _apply_acceleration(args)
            tune_allocator()  # glibc malloc keeps training-step blocks mapped (bench/train/allocator.py)
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
        for env, value in {VERIFY_ENV: saved, **saved_accel}.items():
            if value is None:
                os.environ.pop(env, None)
            else:
                os.environ[env] = value
    return 0


def _apply_acceleration(args: argparse.Namespace) -> None:
    """--compile/--amp/--channels-last reach the workers through the environment (as the checksum flag
    does); bf16 and channels_last forced on a run that is not on CUDA are a one-line error up front."""
    given = {k: getattr(args, k) for k in ACCELERATION_ENV if getattr(args, k, None) is not None}
    for key, value in given.items():
        os.environ[ACCELERATION_ENV[key]] = value
    if given.keys() & {"amp", "channels_last"}:
        from bench.train.acceleration import Acceleration, check_for_device

        check_for_device(Acceleration.from_env(), getattr(args, "device", "auto"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0] if lines else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
