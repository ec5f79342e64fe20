"""Start-up of `dasm-bench` commands, two checkouts side by side, against `python -c "import torch"`.

    git worktree add --detach /tmp/dasm-old <commit>
    python tests/benchmarks/startup_compare.py /tmp/dasm-old [--runs 10]

Each round runs every (command, checkout) pair once, in turn, so load changes hit both alike; the
median wall and CPU seconds (user + system of the child) are printed with their ratio to the
median of `import torch` from the same rounds. The current checkout is this file's repository.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

NEW = Path(__file__).resolve().parents[2]
COMMANDS = {"list": ["list"], "unknown-method": ["distill", "--method", "no-such-method", "--ipc", "1"],
            "--help": ["--help"]}


def timed(argv: list[str], pythonpath: str | None) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # run from the checkout: `python -m` puts the working directory ahead of PYTHONPATH
    subprocess.run(argv, env=env, capture_output=True, check=False, cwd=pythonpath)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("old", help="checkout of the version to compare with")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    cases = {"import torch": ([sys.executable, "-c", "import torch"], None)}
    for label, root in (("old", args.old), ("new", str(NEW))):
        for name, argv in COMMANDS.items():
            cases[f"{name} ({label})"] = ([sys.executable, "-m", "bench.cli.main", *argv], root)
    for argv, root in cases.values():  # warm the file cache and the timm-names cache once
        timed(argv, root)
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for name, (argv, root) in cases.items():
            samples[name].append(timed(argv, root))
    torch_wall = statistics.median(w for w, _ in samples["import torch"])
    torch_cpu = statistics.median(c for _, c in samples["import torch"])
    print(f"{'command':<26} {'wall s':>7} {'x torch':>8} {'CPU s':>7} {'x torch':>8}   ({args.runs} alternating runs)")
    for name, values in samples.items():
        wall = statistics.median(w for w, _ in values)
        cpu = statistics.median(c for _, c in values)
        print(f"{name:<26} {wall:>7.2f} {wall / torch_wall:>7.2f}x {cpu:>7.2f} {cpu / torch_cpu:>7.2f}x")


if __name__ == "__main__":
    main()
