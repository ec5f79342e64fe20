"""What a new user meets in the first hour (issue 29): --version, help texts, honest counts and
captions, and the demo's closing lines."""

from __future__ import annotations

import bench
from bench.cli import main


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"dasm-bench {bench.__version__}") and "\n" not in out


def _subparsers() -> dict:
    import argparse

    from bench.cli_parser import build_parser

    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_of_every_command_has_a_help_text():
    lacking = [f"{name} {a.option_strings or a.dest}" for name, sub in _subparsers().items()
               for a in sub._actions if not a.help]
    assert not lacking, lacking


def test_evaluate_help_lists_every_registered_protocol(capsys, monkeypatch):
    from bench.protocols import PROTOCOLS, EvalProtocol

    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no name wrapped at its hyphen
    monkeypatch.setitem(PROTOCOLS, "new-proto", EvalProtocol(name="new-proto"))
    assert main(["evaluate", "--help"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("--protocol"))
    assert {"dc", "dc-nodsa", "dc-aug", "idc", "mtt", "new-proto"} <= set(PROTOCOLS)
    for name in PROTOCOLS:
        assert f" {name} |" in line or f" {name};" in line, (name, line)


def test_grid_takes_own_as_its_protocol(tmp_path, monkeypatch):
    import pandas as pd

    import bench.plots
    import bench.runner
    from bench.vocabulary import OWN_PROTOCOL

    seen = []
    monkeypatch.setattr(bench.runner, "run_grid", lambda spec, *a, **k: seen.append(spec.protocol) or pd.DataFrame())
    monkeypatch.setattr(bench.plots, "write_reports", lambda *a, **k: [])
    assert main(["grid", "--methods", "random", "--ipc", "1", "--protocol", "own", "--out", str(tmp_path / "g"),
                 "--no-progress"]) == 0
    assert seen == [OWN_PROTOCOL]
