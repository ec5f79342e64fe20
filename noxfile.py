"""nox sessions: the way researchers run dasm-bench.  `nox -l` lists them.

Paper-scale runs take arguments after `--`, e.g. `nox -s saturation -- --dataset cifar10 --device cuda`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
# uv creates and fills the virtualenvs where it is installed (`pip install "nox[uv]"`), else virtualenv
nox.options.default_venv_backend = "uv|virtualenv"
PYTHON = None  # the interpreter nox runs under (README: Python 3.10 or newer, as pyproject.toml requires)


@functools.lru_cache(maxsize=1)
def _pip_settings_for_uv() -> tuple[str, ...]:
    """pip's configured indexes, find-links and constraints as `uv pip install` flags.

    uv does not read pip's configuration files; without this a machine whose pip is pinned (a local
    wheel mirror, a constraints file capping torch) would get a different torch from uv than from pip.
    """
    try:
        listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    flags = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links",
             "constraint": "--constraint"}
    args: list[str] = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        flag = flags.get(key.rsplit(".", 1)[-1].strip())
        for item in value.strip().strip("'\"").split():
            if flag and [flag, item] not in [args[i:i + 2] for i in range(0, len(args), 2)]:
                args += [flag, item]
    return tuple(args)


def _install(session: nox.Session, extras: str = "") -> None:
    # torch/torchvision/timm come from the registry's standard builds via pyproject's dependencies;
    # under uv, from the same indexes and constraints pip would use
    settings = _pip_settings_for_uv() if session.venv_backend == "uv" else ()
    session.install(*settings, "-e", f".{extras}")


def demo_next_steps(out: Path, bin_dir: str) -> list[str]:
    """The lines the demo ends with: where its table and figure are, how to redraw and compare
    them, and what to read next (a new user otherwise stops at the compare line)."""
    tool = f"{bin_dir}/dasm-bench" if bin_dir else "dasm-bench"
    return [f"next: your table is {out}/table_acc_last.md and your figure {out}/saturation.png",
            f"      redraw them from the stored results: {tool} plot {out}; compare again: "
            f"{tool} compare {out} results/demo",
            "      then read the README's \"Using it\" section to run your own methods, datasets and specs"]


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Distill and evaluate on the embedded digits data into a fresh runs/demo-<time>/, then compare
    its table with the committed reference results/demo/ cell by cell (one line: agree or where not;
    a run shortened with e.g. `-- --methods random,herding --ipc 1` is compared on its own cells),
    then print the next steps."""
    _install(session)
    # a new directory every time: the demo computes every cell, never reads the committed table
    out = Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    # bench/specs/demo-digits.toml: coresets and DM, IPC 1-10, 3 seeds; about 3 min on 2 CPU cores
    session.run("dasm-bench", "run", "demo-digits", "--out", str(out), "--device", "cpu",
                *(session.posargs or []))
    try:
        session.run("dasm-bench", "compare", str(out), "results/demo")
    finally:  # a disagreement fails the session, but the results are there to look at all the same
        for line in demo_next_steps(out, os.path.relpath(session.bin) if session.bin else ""):
            session.log(line)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The CI gate: the whole test suite except slow quality checks and benchmarks."""
    _install(session, "[test]")
    session.run("pytest", "-m", "not slow", "--timeout=900", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def quality(session: nox.Session) -> None:
    """Slow quality checks (methods vs random over seeds); writes tables under results/ (the DASM check
    re-records results/digits/dasm/ only with DASM_QUALITY_RECORD=1)."""
    _install(session, "[test]")
    session.run("pytest", "-m", "slow", "-s", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def plots(session: nox.Session) -> None:
    """Regenerate every table and figure from stored results (no recomputation)."""
    _install(session)
    targets = session.posargs or [d for d in ("results/demo", "results/digits", "results/cifar10", "results/cifar100")
                                  if os.path.isdir(d)]
    for target in targets:
        session.run("dasm-bench", "plot", target)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed and memory benchmarks (pytest-benchmark); prints each median's ratio to results/perf/baseline.json.

    `-- --update-baseline --perf-note "quiet 2-core machine"` rewrites the baseline from this run;
    `-- -k matching` runs a subset; `-- -m "not slow"` skips the long memory/10k-append benchmarks;
    `-- -k reference` times our inner steps against the reference implementations' (results/perf/references.md)."""
    _install(session, "[test]")
    session.run("pytest", "tests/benchmarks", "--benchmark-enable", "-m", "", "-q",
                "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=name", *session.posargs)


@nox.session(python=PYTHON)
def cost(session: nox.Session) -> None:
    """CPU cost of each method per outer iteration, expert epoch and evaluation epoch, and the reference
    budgets' hours extrapolated from it (bench/perf/cost_model.py); default: CIFAR-10 (JPEG copy) from
    ../shared/data into results/cifar10/cost/. Takes about an hour on one core."""
    _install(session)
    args = session.posargs or ["--dataset", "cifar10-jpeg", "--data-root", "../shared/data",
                               "--out", "results/cifar10/cost", "--repeats", "3", "--repeats-at", "10=1,50=1",
                               "--methods", "dc,dsa,dm,idc,mtt", "--ipc", "1,10"]
    session.run("dasm-bench", "cost", *args)


@nox.session(name="device-check", python=PYTHON)
def device_check(session: nox.Session) -> None:
    """Does every method run on the GPU? dc, dsa, dm, idc, mtt, dasm and the coresets at IPC 1 and 10 on
    CIFAR-10 (JPEG copy from ../shared/data) for a few iterations each, a short evaluation of each set and
    one full one; timings and a PASS/FAIL line per method into results/device-check/ (bench/perf/device_check.py),
    within 10 minutes on one GPU. Arguments after `--` replace these defaults one by one
    (e.g. `-- --device cpu --dataset digits --ipc 1`)."""
    _install(session)
    defaults = {"--dataset": "cifar10-jpeg", "--data-root": "../shared/data", "--device": "cuda",
                "--out": "results/device-check", "--ipc": "1,10"}
    given = {a.split("=", 1)[0] for a in session.posargs if a.startswith("--")}
    args = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    session.run("python", "-m", "bench.cli.device_check", *args, *session.posargs)


def _spec_and_args(session: nox.Session, kind: str) -> tuple[str, list[str]]:
    """`--dataset NAME` (default digits) picks bench/specs/<kind>-NAME.toml; every other argument
    goes to `dasm-bench run` (e.g. --device cuda, --workers 4, --data-root ~/data --download)."""
    args = list(session.posargs)
    dataset = "digits"
    for i, arg in enumerate(args):
        if arg == "--dataset" and i + 1 < len(args):
            dataset = args[i + 1]
            del args[i:i + 2]
            break
        if arg.startswith("--dataset="):
            dataset = arg.split("=", 1)[1]
            del args[i]
            break
    spec = Path("bench/specs") / f"{kind}-{dataset}.toml"
    if not spec.is_file():
        shipped = sorted(p.stem.removeprefix(f"{kind}-") for p in Path("bench/specs").glob(f"{kind}-*.toml"))
        session.error(f"no {kind} spec for dataset {dataset!r}; available: {', '.join(shipped)}")
    return str(spec), args


@nox.session(python=PYTHON)
def saturation(session: nox.Session) -> None:
    """IPC-saturation experiment (accuracy vs IPC) into results/<dataset>/; `-- --dataset cifar10 --device cuda`."""
    _install(session)
    spec, args = _spec_and_args(session, "ipc-saturation")
    session.run("dasm-bench", "run", spec, *args)


@nox.session(name="cross-arch", python=PYTHON)
def cross_arch(session: nox.Session) -> None:
    """Unseen-architecture tables (ConvNet-distilled sets on timm models) into results/<dataset>/."""
    _install(session)
    spec, args = _spec_and_args(session, "cross-arch")
    session.run("dasm-bench", "run", spec, *args)


@nox.session(python=PYTHON)
def claim(session: nox.Session) -> None:
    """The claim (DASM vs IDC and seq, paired over seeds, one protocol) into results/<dataset>/claim/;
    `-- --dataset mnist5k` for the 28x28 repeat; resumes."""
    _install(session)
    spec, args = _spec_and_args(session, "claim")
    session.run("dasm-bench", "run", spec, *args)


@nox.session(python=PYTHON)
def sweep(session: nox.Session) -> None:
    """Optuna sweep of DASM's segment schedule (`dasm-bench sweep`); digits IPC 10 unless told otherwise."""
    _install(session)
    args = list(session.posargs)
    if not any(a == "--dataset" or a.startswith("--dataset=") for a in args):
        args = ["--dataset", "digits", *args]
    if not any(a == "--ipc" or a.startswith("--ipc=") for a in args):
        args = ["--ipc", "10", *args]
    session.run("dasm-bench", "sweep", *args)


@nox.session(python=PYTHON)
def budget(session: nox.Session) -> None:
    """Budget curves on digits: dc, dm, idc, mtt, dasm (base idc) at x1..x8 their CPU budget, IPC 10
    and 50, 3 seeds, into results/digits/budget/; resumes. Arguments after `--` replace these defaults
    one by one (e.g. `-- --max-hours 3 --rungs 1,2,4,8,16 --workers 2`)."""
    _install(session)
    defaults = {"--methods": "dc,dm,idc,mtt,dasm", "--dataset": "digits", "--ipc": "10,50", "--seeds": "0,1,2",
                "--rungs": "1,2,4,8", "--epochs": "200", "--models": "1", "--out": "results/digits/budget",
                "--max-hours": "4"}  # evaluation as ipc-saturation-digits: 200 epochs, 1 model per set
    given = {a.split("=", 1)[0] for a in session.posargs if a.startswith("--")}
    args = [x for k, v in defaults.items() if k not in given for x in (k, v)]
    session.run("dasm-bench", "budget", "--set", "dasm.base=idc", *args, *session.posargs)
