"""What a new user meets in the first hour (issue 29): --version, help texts, honest counts and
captions, and the demo's closing lines."""

from __future__ import annotations

import bench
from bench.cli.main import main


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"dasm-bench {bench.__version__}") and "\n" not in out


def _subparsers() -> dict:
    import argparse

    from bench.cli.parser import build_parser

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

    import bench.report.plots
    import bench.run.runner
    from bench.vocabulary import OWN_PROTOCOL

    seen = []
    monkeypatch.setattr(bench.run.runner, "run_grid",
                        lambda spec, *a, **k: seen.append(spec.protocol) or pd.DataFrame())
    monkeypatch.setattr(bench.report.plots, "write_reports", lambda *a, **k: [])
    assert main(["grid", "--methods", "random", "--ipc", "1", "--protocol", "own", "--out", str(tmp_path / "g"),
                 "--no-progress"]) == 0
    assert seen == [OWN_PROTOCOL]


def _grid_like(out, set_protocol: str = "dc@5ep", full_protocol: str = "dc-nodsa@2ep", models: int = 2):
    """Rows of two methods x 2 seeds under ``set_protocol`` and the one full-data record a
    `dasm-bench grid` writes (``dc-nodsa`` while the sets are under ``dc``)."""
    import json

    from bench.store.results import ResultsTable

    rows = [{"cell_key": f"{m}-{s}", "method": m, "dataset": "digits", "ipc": 1, "seed": s, "arch": "convnet",
             "protocol": set_protocol, "num_models": models, "acc_last": acc + s, "acc_last_std": 0.0,
             "acc_val": float("nan"), "acc_val_std": float("nan"), "distill_seconds": 1.0, "eval_seconds": 1.0,
             "code_version": "t", "config_hash": f"{m}{s}", "synthetic_path": ""}
            for m, acc in (("random", 50.0), ("herding", 60.0)) for s in (0, 1)]
    ResultsTable(out).append(rows)
    (out / "full_data.json").write_text(json.dumps({"by_protocol": {full_protocol: {
        "dataset": "digits", "arch": "convnet", "protocol": full_protocol, "acc": 90.0}}}))


def test_accuracy_table_says_what_its_spread_is_and_over_how_many_runs(tmp_path):
    from bench.report.plots import write_reports

    _grid_like(tmp_path)
    write_reports(tmp_path, log=lambda m: None, pictures=False)
    caption, blank, header = (tmp_path / "table_acc_last.md").read_text().splitlines()[:3]
    assert caption == ("Last-epoch test accuracy (%): mean ± sample standard deviation over 2 seeds (2 models each; "
                       "a seed's value is the mean over its models).")
    assert blank == "" and header == "| method | IPC 1 |"
    assert "| herding | 60.5 ± 0.7 |" in (tmp_path / "table_acc_last.md").read_text()   # std of 60, 61


def test_full_data_row_names_its_protocol_where_it_differs_from_the_sets(tmp_path):
    from bench.report.plots import write_reports

    _grid_like(tmp_path / "other")
    write_reports(tmp_path / "other", log=lambda m: None, pictures=False)
    assert ("| full data (dc-nodsa@2ep; the sets: dc@5ep) | 90.0 |"
            in (tmp_path / "other" / "saturation_own.md").read_text())
    _grid_like(tmp_path / "same", full_protocol="dc@5ep")
    write_reports(tmp_path / "same", log=lambda m: None, pictures=False)
    assert "| full data (dc@5ep) | 90.0 |" in (tmp_path / "same" / "saturation_own.md").read_text()


def test_the_count_of_written_files_is_what_is_on_disk(tmp_path, capsys):
    import re

    out = tmp_path / "grid"
    assert main(["grid", "--methods", "random", "--ipc", "1", "--epochs", "2", "--models", "1",
                 "--full-data-epochs", "1", "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    text = capsys.readouterr().out
    on_disk = sorted(p for p in out.rglob("*") if p.is_file())
    total = re.search(rf"^wrote (\d+) files under {re.escape(str(out))}: (.*)$", text, flags=re.M)
    assert total and int(total.group(1)) == len(on_disk), (text, on_disk)
    synthetic = sum(1 for p in on_disk if p.relative_to(out).parts[0] == "synthetic")
    assert f"{synthetic} in synthetic/" in total.group(2)
    reports = re.search(r"^wrote (\d+) tables and figures under", text, flags=re.M)
    assert reports and 0 < int(reports.group(1)) < len(on_disk)
    # a rerun of the reports rewrites only them: the count says so, sets and cells untouched
    assert main(["plot", str(out)]) == 0
    again = re.search(r"^wrote (\d+) files under .*: (\d+) at its top level$", capsys.readouterr().out, flags=re.M)
    assert again and again.group(1) == again.group(2)


def _noxfile(monkeypatch):
    """The project's noxfile, imported under a stand-in ``nox`` (the test venv has no nox)."""
    import importlib.util
    import sys
    import types
    from pathlib import Path

    fake = types.ModuleType("nox")
    fake.options = types.SimpleNamespace()
    fake.session = lambda *a, **k: (lambda f: f)
    fake.Session = object
    monkeypatch.setitem(sys.modules, "nox", fake)
    path = Path(__file__).resolve().parents[1] / "noxfile.py"
    spec = importlib.util.spec_from_file_location("noxfile_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Session:
    venv_backend = "virtualenv"
    bin = ".nox/demo/bin"

    def __init__(self, posargs, fail_on=None):
        self.posargs, self.fail_on, self.runs, self.logs = posargs, fail_on, [], []

    def install(self, *args):
        pass

    def run(self, *args):
        self.runs.append(args)
        if args[1] == self.fail_on:
            raise RuntimeError("Command dasm-bench compare failed with exit code 1")

    def log(self, line):
        self.logs.append(line)


def test_demo_ends_with_the_next_steps_even_when_it_disagrees(monkeypatch):
    import pytest

    noxfile = _noxfile(monkeypatch)
    session = _Session(["--methods", "random,herding", "--ipc", "1"])
    noxfile.demo(session)
    run, compare = session.runs
    out = run[run.index("--out") + 1]
    assert (run[-4:] == ("--methods", "random,herding", "--ipc", "1")
            and compare == ("dasm-bench", "compare", out, "results/demo"))
    assert 2 <= len(session.logs) <= 3
    text = "\n".join(session.logs)
    assert f"{out}/table_acc_last.md" in text and f"{out}/saturation.png" in text
    assert f".nox/demo/bin/dasm-bench plot {out}" in text and f"compare {out} results/demo" in text
    assert "README" in text and '"Using it"' in text
    failing = _Session([], fail_on="compare")
    with pytest.raises(RuntimeError):
        noxfile.demo(failing)
    assert failing.logs and "table_acc_last.md" in failing.logs[0]
