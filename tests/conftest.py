"""Shared fixtures: the embedded digits dataset and a tiny evaluation protocol."""

from __future__ import annotations

import pytest

from bench.data import load_dataset
from bench.evaluation import PROTOCOLS


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny_protocol():
    # 5 epochs, no DSA: fast enough to evaluate in tests while exercising the full loop
    return PROTOCOLS["dc-nodsa"].with_epochs(5)
