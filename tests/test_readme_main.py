"""Every number the main README states comes from where it says (issue 29): decimals are checked
against the file or code they come from, and the counts it quotes are recomputed."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from readme_numbers import prose, unchecked_decimals  # noqa: E402

README = (ROOT / "README.md").read_text()


def _cost(method: str) -> str:
    with open(ROOT / "results/cifar10/cost/cost.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["method"] == method and r["unit"] == "outer iteration"
                   and r["ipc"] == "1")
    return f"{float(row['per_unit_seconds']):.3f}"


def test_every_decimal_in_the_readme_comes_from_its_source():
    from bench.data.datasets import load_dataset
    from bench.protocols import PROTOCOLS

    python = re.search(r'requires-python = ">=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    test_images = len(load_dataset("digits").test.labels)
    expected = {
        python,                                   # pyproject.toml's requires-python
        f"{2 * 100 / test_images:.2f}",           # the compare floor: 2 digits test images, in points
        _cost("dm"), _cost("dc"),                 # results/cifar10/cost/cost.csv, IPC 1, one thread
        f"{PROTOCOLS['dc'].lr:g}", f"{PROTOCOLS['idc'].cutmix_prob:g}",
    }
    assert not unchecked_decimals(README, expected), unchecked_decimals(README, expected)


def test_the_counts_the_readme_quotes_are_the_specs_and_protocols():
    from bench.protocols import PROTOCOLS
    from bench.spec.cells import cells
    from bench.spec.experiment import load_spec

    demo = load_spec("demo-digits", warn=lambda m: None)
    n = len(list(cells(demo.grid())))
    text = prose(README)
    assert f"all {n} cells" in text and f"all {n} cells were" in text
    shortened = demo.subset(["random", "herding"], [1])
    k = len(list(cells(shortened.grid())))
    assert f"all {k} computed cells" in text and f"({n - k} reference cells not run)" in text
    assert f"E = {PROTOCOLS['dc'].epochs}" in text and f"batch {PROTOCOLS['dc'].batch_size}" in text
    assert f"E = {PROTOCOLS['dc-nodsa'].epochs}" in text and f"batch {PROTOCOLS['idc'].batch_size};" in text


def test_the_readme_states_no_timing_without_a_measurement_file():
    """Install and run times vary with the machine and its load: the README points at the command
    that prints them instead of quoting one run (no committed raw measurement backs such a figure)."""
    assert not re.search(r"\b\d+ min \d+ s\b", prose(README)), "a wall time in the README"
