"""nox sessions: the way researchers run dasm-bench.  `nox -l` lists them.

Paper-scale runs take arguments after `--`, e.g. `nox -s saturation -- --dataset cifar10 --device cuda`.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
PYTHON = None  # the interpreter nox runs under (README: Python 3.11)


def _install(session: nox.Session, extras: str = "") -> None:
    # torch/torchvision/timm come from the registry's standard builds via pyproject's dependencies
    session.install("-e", f".{extras}")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Distill and evaluate on the embedded digits data; table + IPC-saturation figure in results/demo/."""
    _install(session)
    # bench/specs/demo-digits.toml: coresets and DM, IPC 1-10, 3 seeds; < 10 min on 2 CPU cores
    session.run("dasm-bench", "run", "demo-digits", "--out", "results/demo", "--device", "cpu",
                *(session.posargs or []))


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The CI gate: the whole test suite except slow quality checks and benchmarks."""
    _install(session, "[test]")
    session.run("pytest", "-m", "not slow", "--timeout=900", *(session.posargs or ["-q"]))


@nox.session(python=PYTHON)
def quality(session: nox.Session) -> None:
    """Slow quality checks (methods vs random over seeds); writes tables under results/."""
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
    """Speed and memory benchmarks (pytest-benchmark)."""
    _install(session, "[test]")
    session.run("pytest", "tests/benchmarks", "--benchmark-enable", "-m", "", "-q", *session.posargs)


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
