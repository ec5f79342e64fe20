"""nox sessions: the way researchers run dasm-bench.  `nox -l` lists them.

Paper-scale runs take arguments after `--`, e.g. `nox -s saturation -- --dataset cifar10 --device cuda`.
"""

from __future__ import annotations

import os

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
    args = session.posargs or []
    session.run(
        "dasm-bench", "grid",
        "--methods", os.environ.get("DEMO_METHODS", "random,herding,kcenter,forgetting"),
        "--dataset", "digits", "--ipc", "1,5,10,20", "--seeds", "0,1,2",
        "--epochs", "300", "--models", "2", "--full-data-epochs", "100",
        "--out", "results/demo", "--device", "cpu", *args,
    )


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
    targets = session.posargs or [d for d in ("results/demo", "results/digits") if os.path.isdir(d)]
    for target in targets:
        session.run("dasm-bench", "plot", target)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed and memory benchmarks (pytest-benchmark)."""
    _install(session, "[test]")
    session.run("pytest", "tests/benchmarks", "--benchmark-enable", "-m", "", "-q", *session.posargs)
