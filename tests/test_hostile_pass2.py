"""Regressions from the third adversarial pass (436 hostile inputs, /tmp/hostile-pass): each is one
line ``error: ...`` and exit 2, nothing written, no compute spent.

Example::

    PYTHONPATH=. python -m pytest -q -m "not slow" tests/test_hostile_pass2.py
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hostile_cli import refuse_compute
from hostile_cli import refused as _refused

from bench.cli.main import main

DISTILL = ["distill", "--method", "random", "--ipc", "1", "--no-progress", "--device", "cpu"]
SPEC = ('name = "t"\ndataset = "digits"\nipc = [1]\nseeds = [0]\n[evaluation]\nepochs = 1\nmodels = 1\n'
        '[methods.random]\n')
BIG_INT = "9" * 5000  # int() refuses more than 4,300 digits with a ValueError that is not a JSONDecodeError


@pytest.fixture(scope="module")
def good_set(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pass2") / "good.safetensors"
    assert main(DISTILL + ["--out", str(path)]) == 0
    return path


@pytest.fixture()
def no_compute(monkeypatch):
    refuse_compute(monkeypatch)




def _copy_set(good: Path, dst: Path, edit=None) -> Path:
    shutil.copy(good, dst)
    side = json.loads(good.with_suffix(".json").read_text())
    text = json.dumps(side) if edit is None else edit(side)
    dst.with_suffix(".json").write_text(text if isinstance(text, str) else json.dumps(side))
    return dst


# ----------------------------------------------------------------------------- integers of 5,000 digits

def test_config_with_a_huge_integer(tmp_path, capsys, no_compute):
    config = tmp_path / "c.json"
    config.write_text('{"iterations": ' + BIG_INT + "}")
    _refused(["distill", "--method", "dm", "--ipc", "1", "--config", str(config), "--out", str(tmp_path / "o")],
             capsys, "cannot read config")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_sidecar_with_a_huge_integer(good_set, tmp_path, capsys, no_compute):
    bad = _copy_set(good_set, tmp_path / "s.safetensors",
                    lambda side: json.dumps(side).replace('"ipc": 1', '"ipc": ' + BIG_INT))
    _refused(["evaluate", str(bad)], capsys, "not valid JSON")


def test_spec_with_a_huge_integer(tmp_path, capsys, no_compute):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.replace("seeds = [0]", f"seeds = [{BIG_INT}]"))
    _refused(["run", str(spec), "--plan"], capsys, "not valid TOML")


def test_full_data_record_with_a_huge_integer(tmp_path):
    from bench.store.full_data import FILE, read_full_data

    (tmp_path / FILE).write_text('{"dc": {"acc_last": ' + BIG_INT + "}}")
    assert read_full_data(tmp_path) == {}  # a damaged record loses its reference rows, never the run


# ----------------------------------------------------------------------------- sidecar fields that key a results cell

@pytest.mark.parametrize("edit, needle", [
    (lambda meta: meta.update(ipc=50), "says IPC 50"),            # filed under IPC 50, a set of IPC 1
    (lambda meta: meta.update(train_split="test"), "train_split"),  # "test": the row would claim it
])
def test_sidecar_fields_that_would_file_the_row_wrongly(good_set, tmp_path, capsys, no_compute, edit, needle):
    bad = _copy_set(good_set, tmp_path / "s.safetensors", lambda side: edit(side["metadata"]))
    _refused(["evaluate", str(bad), "--results", str(tmp_path / "r")], capsys, needle)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- protocol budgets

@pytest.mark.parametrize("protocol", ["dc@99999999999999999999ep", "dc-nodsa@100001ep", "dc@" + "9" * 5000 + "ep"])
def test_protocol_budget_beyond_the_epoch_range(good_set, capsys, no_compute, protocol):
    # the --epochs flag is bounded; a budget in the protocol's name trained for ever
    _refused(["evaluate", str(good_set), "--protocol", protocol], capsys, "[1, 100000]")


def test_protocol_budget_at_the_edge_is_accepted():
    from bench.protocols import get_protocol

    assert get_protocol("dc@100000ep").epochs == 100_000


# ----------------------------------------------------------------------------- output paths a careless hand gives

@pytest.mark.parametrize("argv, needle", [
    (DISTILL + ["--out", ""], "names a directory"),                 # was: the default path, silently
    (DISTILL + ["--out", "{tmp}/new/"], "names a directory"),       # was: a file named new.safetensors
    (DISTILL + ["--out", "/dev/null"], "not a regular file"),       # was: /dev/null.safetensors written
    (["show", "{set}", "--out", ""], "empty path"),
    (["show", "{set}", "--out", "{tmp}/new/"], "names a directory"),
    (["evaluate", "{set}", "--results", ""], "empty path"),          # was: a table in the working directory
    (["evaluate", "{set}", "--results", "/"], "file system root"),   # was: /cells and /results.* written
    (["grid", "--methods", "random", "--ipc", "1", "--out", ""], "empty path"),
    (["grid", "--methods", "random", "--ipc", "1", "--out", "/"], "file system root"),
    (["grid", "--methods", "random", "--ipc", "1", "--out", "{tmp}/g", "--tensorboard", "/"], "file system root"),
    (["grid", "--methods", "random", "--ipc", "1", "--out", "{tmp}/g", "--tensorboard", "{spec}"], "it is a file"),
    (["run", "{spec}", "--out", "{tmp}/r", "--tensorboard", ""], "empty path"),
    (["run", "{spec}", "--out", ""], "empty path"),
    (["run", "{spec}", "--out", "", "--plan"], "empty path"),
    (["sweep", "--ipc", "1", "--out", ""], "empty path"),
    (["import", "{tmp}", "--dataset", "digits", "--out", ""], "empty path"),
    (["cost", "--out", "", "--methods", "dm", "--ipc", "1"], "empty path"),
])
def test_output_paths(good_set, tmp_path, capsys, no_compute, monkeypatch, argv, needle):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    _refused([a.format(tmp=tmp_path, set=good_set, spec=spec) for a in argv], capsys, needle)
    assert sorted(tmp_path.rglob("*")) == before


# ----------------------------------------------------------------------------- results cells

@pytest.mark.parametrize("field, value", [("protocol", "../x"), ("protocol", ""), ("train_split", "test")])
def test_cell_names_that_no_run_writes(tmp_path, capsys, field, value):
    from bench.store.results import ResultsTable

    row = {"cell_key": "k", "method": "random", "dataset": "digits", "ipc": 1, "seed": 0, "arch": "convnet",
           "protocol": "dc@1ep", "num_models": 1, "acc_last": 50.0, "acc_last_std": 0.0,
           "distill_seconds": 1.0, "eval_seconds": 1.0, "train_split": "full"}
    ResultsTable(tmp_path / "res").append([row])
    cell = next((tmp_path / "res" / "cells").glob("*.json"))
    cell.write_text(json.dumps({**row, field: value}))
    _refused(["plot", str(tmp_path / "res")], capsys, field)


def test_cell_protocol_suffixes_are_read():
    from bench.store.results import check_row

    for protocol in ("dc", "dc@300ep", "mtt@lr0.01", "dc-nodsa@300ep@hard", "idc"):
        check_row({"cell_key": "k", "protocol": protocol, "train_split": "train-val"})


# ----------------------------------------------------------------------------- open cases of issue 26, closed

@pytest.mark.parametrize("flag", ["--study", "--storage"])
def test_an_empty_sweep_name_or_url_is_refused_not_replaced_by_the_default(flag, tmp_path, capsys, no_compute,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    _refused(["sweep", "--dataset", "digits", "--ipc", "1", "--trials", "1", flag, " "], capsys, f"{flag} is empty")
    assert not (tmp_path / "results").exists()


def test_a_spec_with_an_empty_name_is_refused(tmp_path, capsys):
    spec = tmp_path / "e.toml"
    spec.write_text(SPEC.replace('name = "t"', 'name = ""'))
    _refused(["run", str(spec), "--plan"], capsys, "name must not be empty")


def test_all_zero_or_negative_soft_labels_are_refused_before_training():
    import torch

    from bench.errors import BenchError
    from bench.store.synthetic import SyntheticSet

    images = torch.zeros(2, 1, 8, 8)
    with pytest.raises(BenchError, match="probability rows.*row 0 sums to 0"):
        SyntheticSet(images, torch.zeros(2, 10))
    with pytest.raises(BenchError, match="probability rows"):
        SyntheticSet(images, torch.tensor([[2.0] + [-0.1] * 9] * 2))
    SyntheticSet(images, torch.full((2, 10), 0.1))  # proper rows are kept


def test_an_edited_sidecar_factor_is_caught_by_the_checksummed_copy(good_set, tmp_path, capsys, no_compute):
    def edit(side):
        side["factor"] = 2  # in range, so only the copy inside the checksummed bytes can tell
        return json.dumps(side)

    bad = _copy_set(good_set, tmp_path / "f.safetensors", edit)
    _refused(["evaluate", str(bad)], capsys, "disagrees with the set's checksummed factor [1]")
