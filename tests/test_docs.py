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
            "assert {'run_experiment', 'register_method', 'register_dataset', 'register_architecture'} <= set(dir(bench))\n"
            "print('ok')")
    assert _run(code, ROOT).strip() == "ok"
