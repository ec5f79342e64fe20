"""``python -m bench.cli.device_check``: the command line of :mod:`bench.perf.device_check` (does every
method run on this device? timings and a PASS/FAIL line per method).

Example::

    python -m bench.cli.device_check --device cuda --out results/device-check
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Sequence

from bench.cli.checks import int_list, positive_int, str_list
from bench.cli.parser import EXIT_BAD_INPUT, _Parser, epochs_int, seconds_float
from bench.errors import BenchError
from bench.perf import device_check
from bench.perf.device_check import DEFAULT_OUT, METHODS, _message, run_device_check, runtime_options


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.cli.device_check``: 0 when every run passed, 1 when one failed, 2 for bad input."""
    started = time.perf_counter()
    p = _Parser(prog="python -m bench.cli.device_check", description=device_check.__doc__.splitlines()[0])
    p.add_argument("--dataset", default="cifar10-jpeg", help="dataset (default: cifar10-jpeg)")
    p.add_argument("--data-root", default=None, help="where real datasets live (default: $DASM_DATA or ~/.cache)")
    p.add_argument("--device", default="cuda", help="auto | cpu | cuda (default: cuda)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--ipc", type=int_list, default=[1, 10], help="comma-separated IPCs (default: 1,10)")
    p.add_argument("--methods", type=str_list, default=list(METHODS),
                   help=f"comma-separated methods (default: {','.join(METHODS)})")
    p.add_argument("--iterations", type=positive_int, default=2,
                   help="value of every budget field, e.g. outer iterations (default: 2)")
    p.add_argument("--eval-epochs", type=epochs_int, default=10, help="short evaluation epochs (default: 10)")
    p.add_argument("--full-eval-epochs", type=epochs_int, default=None,
                   help="epochs of the full evaluation (default: protocol dc's own, 1000)")
    p.add_argument("--budget-seconds", type=seconds_float, default=540.0,
                   help="start no run after this many seconds (default: 540)")
    p.add_argument("--amp", choices=["off", "bf16"], default=None, help="default: bf16 on CUDA, off on CPU")
    p.add_argument("--channels-last", choices=["on", "off"], default=None, help="default: on on CUDA, off on CPU")
    p.add_argument("--compile", choices=["auto", "on", "off"], default=None, help="default: auto")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        from bench.data.datasets import load_dataset
        from bench.methods.registry import get_method
        from bench.paths import check_writable
        from bench.train.allocator import tune_allocator
        from bench.train.evaluation import resolve_device

        check_writable(Path(args.out), "--out", directory=True)  # before any work
        for method in args.methods:
            get_method(method)
        tune_allocator()
        device = resolve_device(args.device)
        options = runtime_options(device, args.amp, args.channels_last, args.compile)
        data = load_dataset(args.dataset, args.data_root)
        print(f"loaded {data.name} in {time.perf_counter() - started:.1f} s", flush=True)
        rows = run_device_check(data, device, args.ipc, args.methods, args.iterations, Path(args.out),
                                args.full_eval_epochs, args.eval_epochs, args.budget_seconds, options, started)
    except BenchError as exc:
        print(f"error: {_message(exc) or type(exc).__name__}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # an --out that cannot be written, a data file that cannot be read
        from bench.paths import describe_os_error

        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"wrote {Path(args.out) / 'device_check.csv'} and device_check.md", flush=True)
    return 1 if any(r["status"] == "FAIL" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
