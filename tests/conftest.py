"""Shared fixtures: the embedded digits dataset and a tiny evaluation protocol."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.data.datasets import load_dataset
from bench.protocols import PROTOCOLS
from bench.train.allocator import tune_allocator

# the tests (and the in-process benchmarks) run under the allocator the CLI and its workers use
tune_allocator()


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_protocol():
    # 5 epochs, no DSA: fast enough to evaluate in tests while exercising the full loop
    return PROTOCOLS["dc-nodsa"].with_epochs(5)


# ----------------------------------------------------------------------------- real services
# Servers started on this machine for the tests that need them; each skips with its reason
# where it cannot start (.ci/run installs the Debian packages where missing).

@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on loopback for the session (tests/pg_server.py)."""
    from pg_server import PostgresUnavailable, start_postgres

    try:
        cm = start_postgres()
        server = cm.__enter__()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        cm.__exit__(None, None, None)


@pytest.fixture
def postgres_url(postgres_server):
    """The SQLAlchemy URL of a new, empty database (each test starts from no tables)."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A single-node Slurm on this machine (tests/slurm_cluster.py); ``SLURM_CONF`` points at it
    for the whole session, so ``sbatch``/``squeue`` here and in subprocesses reach it."""
    import os

    from slurm_cluster import SlurmUnavailable, start_slurm

    root = tmp_path_factory.mktemp("slurm")
    try:
        cm = start_slurm(root)
        cluster = cm.__enter__()
    except SlurmUnavailable as exc:
        pytest.skip(str(exc).splitlines()[0])
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    try:
        yield cluster
    finally:
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        cm.__exit__(None, None, None)


def shared_dir() -> Path | None:
    """The project's shared data folder: ``$DASM_SHARED``, else ``<repo>/../shared`` (where CI and the
    developers' machines keep it); None when neither exists (tests that need it then skip)."""
    from pathlib import Path

    env = os.environ.get("DASM_SHARED")
    for candidate in ([Path(env)] if env else []) + [Path(__file__).resolve().parents[1].parent / "shared"]:
        if candidate.is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def cifar10_jpeg_archive():
    """The shared offline CIFAR-10 JPEG archive, or a skip that says where it was looked for."""
    shared = shared_dir()
    archive = shared / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz" if shared else None
    if archive is None or not archive.is_file():
        pytest.skip("the shared CIFAR-10 JPEG copy is absent (looked in $DASM_SHARED and <repo>/../shared/"
                    "data/cifar10-jpeg/cifar10-jpeg.tar.gz)")
    return archive
