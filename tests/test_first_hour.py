"""What a new user meets in the first hour (issue 29): --version, help texts, honest counts and
captions, and the demo's closing lines."""

from __future__ import annotations

import bench
from bench.cli import main


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"dasm-bench {bench.__version__}") and "\n" not in out
