"""The README's "From Python" example and the docs/ worked examples run as written (each in a fresh
interpreter, so what they register never leaks into other tests)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def readme_from_python() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = python_blocks(section)
    assert len(blocks) == 1, "the README's From Python section holds one python block"
    return blocks[0]


def _run(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_readme_from_python_round_trip(tmp_path):
    code = readme_from_python()
    assert 10 <= len(code.strip().splitlines()) <= 15
    out = _run(code, tmp_path)
    import pandas as pd

    df = pd.read_parquet(tmp_path / "runs/from-python/results.parquet")
    assert sorted(df["method"]) == ["dm", "dm", "random", "random"] and set(df["seed"]) == {0, 1}
    assert "| method | IPC 5 |" in out and "dm" in out and "random" in out
    assert (tmp_path / "runs/from-python/dm-ipc5-s1.json").exists()


@pytest.mark.parametrize("page, expected", [
    ("adding-a-method.md", r"class-means IPC 2: \d+\.\d%"),
    ("adding-a-dataset.md", r"herding on bars, IPC 5: \d+\.\d%"),
    ("adding-an-architecture.md", r"random IPC 5 on mlp2: \d+\.\d%"),
])
def test_docs_worked_examples_run(tmp_path, page, expected):
    blocks = python_blocks((ROOT / "docs" / page).read_text())
    assert blocks, f"docs/{page} has no python block"
    out = _run("\n".join(blocks), tmp_path)
    assert re.search(expected, out), out


def test_import_bench_stays_light():
    code = ("import sys, bench\nassert 'torch' not in sys.modules, 'import bench pulled in torch'\n"
            "assert callable(bench.distill) and bench.SyntheticSet.__name__ == 'SyntheticSet'\n"
            "assert {'run_experiment', 'register_method', 'register_dataset', 'register_architecture'} "
            "<= set(dir(bench))\n"
            "print('ok')")
    assert _run(code, ROOT).strip() == "ok"


# ----------------------------------------------------------------------------- facts in the README's opening

def readme_opening() -> str:
    """The README above "## Using it": what a new user reads first."""
    return (ROOT / "README.md").read_text().split("## Using it", 1)[0]


def test_readme_opening_types_no_test_count_that_goes_stale():
    prose = " ".join(readme_opening().split())
    assert not re.search(r"\d+ (passed|skipped|failed|tests)\b", prose), "pytest's own summary gives the counts"
    assert "bash .ci/run" in prose and "PostgreSQL" in prose and "Slurm" in prose and "skipped" in prose


def test_readme_shortened_demo_line_counts_the_cells_it_names():
    from bench.report.compare import KEYS
    from bench.spec.experiment import load_spec
    from bench.store.results import ResultsTable

    prose = " ".join(readme_opening().split())
    found = re.search(r"`nox -s demo -- --methods ([\w,]+) --ipc ([\d,]+)`.*?`agree: all (\d+) computed cells "
                      r"\((\d+) reference cells not run\)", prose)
    assert found, "the README shows the shortened demo's compare line"
    methods, ipcs = found.group(1).split(","), [int(i) for i in found.group(2).split(",")]
    _, cells = load_spec("demo-digits").subset(methods, ipcs).count_cells()
    reference = len(ResultsTable(ROOT / "results" / "demo").load().drop_duplicates(KEYS))
    assert (int(found.group(3)), int(found.group(4))) == (cells, reference - cells)


def _disk_bytes(root: str) -> int:
    """What `du -s` counts: allocated blocks, each hard-linked file once, links not followed."""
    seen, total = set(), 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(folder, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def test_readme_virtualenv_size_is_this_virtualenvs():
    import torch

    found = re.search(r"virtualenv under `\.nox/` takes about (\d+) GB", " ".join(readme_opening().split()))
    assert found, "the README states the virtualenv's disk cost"
    if Path(sys.prefix).parent.name != ".nox":
        pytest.skip(f"not run from a nox virtualenv ({sys.prefix}); the README's figure is a nox session's")
    if torch.version.cuda is None:
        pytest.skip("a CPU build of torch: the README's figure is the registry's standard (CUDA) build")
    assert round(_disk_bytes(sys.prefix) / 1e9) == int(found.group(1))


def test_readme_says_which_commands_take_a_seed_and_a_device():
    import argparse

    from bench.cli.parser import build_parser

    prose = " ".join((ROOT / "README.md").read_text().split())
    found = re.search(r"Every command that trains takes `--device auto\|cpu\|cuda` and its seeds: `--seed N` "
                      r"\(([^)]*)\) or `--seeds [^`]*` \(([^)]*)\)", prose)
    assert found, "the README names the commands with --seed / --seeds"
    named = [set(re.findall(r"`([\w-]+)`", group)) for group in found.groups()]
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    options = {name: {o for a in sub._actions for o in a.option_strings} for name, sub in commands.items()}
    with_device = {name for name, opts in options.items() if "--device" in opts}
    assert named[0] == {name for name in with_device if "--seed" in options[name]}
    assert named[1] == {name for name in with_device if "--seeds" in options[name]}
    assert named[0] | named[1] == with_device
