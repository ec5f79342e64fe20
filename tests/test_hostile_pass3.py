"""Regressions from the adversarial pass over ``import``, ``compare``, ``cost``, ``published`` and
``list`` (/tmp/hostile3): each bad input is one line ``error: ...`` and exit 2, nothing written,
no compute spent.

Example::

    PYTHONPATH=. python -m pytest -q tests/test_hostile_pass3.py
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hostile_cli import refuse_compute
from hostile_cli import refused as _refused

from bench.cli.main import main

K, C = 10, 10  # one 8x8 image per class of digits




def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


def _ddranking(folder: Path, images=None, labels=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(torch.randn(K, 1, 8, 8) if images is None else images, folder / "images.pt")
    torch.save(torch.arange(C) if labels is None else labels, folder / "labels.pt")
    return folder


@pytest.fixture()
def no_compute(monkeypatch):
    refuse_compute(monkeypatch)


def _import(source, out: Path) -> list[str]:
    return ["import", str(source), "--dataset", "digits", "--out", str(out)]


# ----------------------------------------------------------------------------- import: tensors that are not data

class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("images, needle", [
    (lambda: torch.randn(K, 1, 8, 8).to_sparse(), "dense tensor"),               # was: RuntimeError traceback
    (lambda: torch.empty(K, 1, 8, 8, device="meta"), "meta tensor"),             # was: NotImplementedError
])
def test_tensors_without_dense_data_are_refused(tmp_path, capsys, images, needle):
    src = _ddranking(tmp_path / "src", images=images())
    _refused(_import(src, tmp_path / "o.safetensors"), capsys, needle)
    assert not (tmp_path / "o.safetensors").exists()


def test_a_protocol_4_pickle_is_one_line_and_never_suggests_weights_only_false(tmp_path, capsys):
    src = _ddranking(tmp_path / "src")
    with open(src / "images.pt", "wb") as f:  # torch warned about the protocol on stderr: three lines
        pickle.dump(_Evil(), f, protocol=4)
    err = _refused(_import(src, tmp_path / "o.safetensors"), capsys, "cannot be read as a torch file")
    assert "weights_only" not in err and "Unsupported operand" in err


def test_nan_labels_are_named_as_nan(tmp_path, capsys):
    src = _ddranking(tmp_path / "src", labels=torch.full((K,), float("nan")))
    _refused(_import(src, tmp_path / "o.safetensors"), capsys, "NaN or inf")  # was: "fractional values"


def test_a_dc_file_with_an_accuracy_beyond_a_float_imports_without_it(tmp_path, capsys):
    src = tmp_path / "res_DC_x.pt"
    torch.save({"data": [[torch.randn(K, 1, 8, 8), torch.arange(C)]],
                "accs_all_exps": {"ConvNet": [10 ** 400], "MLP": [0.5, float("nan")], "VGG": [0.25, 0.75]}}, src)
    assert main(_import(src, tmp_path / "o.safetensors")) == 0       # was: OverflowError traceback
    from bench.store.synthetic import SyntheticSet

    meta = SyntheticSet.load(tmp_path / "o.safetensors").metadata
    assert meta["import"]["reported_accuracies"] == {"VGG": [0.25, 0.75]}  # no inf/NaN in the sidecar


# ----------------------------------------------------------------------------- import: paths

@pytest.mark.parametrize("where", ["source", "lr", "images"])
def test_fifos_are_refused_by_name(tmp_path, capsys, where):
    if where == "source":
        src = tmp_path / "res.pt"
        os.mkfifo(src)                     # was: "does not exist"
    else:
        src = _ddranking(tmp_path / "src")
        fifo = src / f"{where}.pt"
        fifo.unlink(missing_ok=True)
        os.mkfifo(fifo)                    # lr: was silently skipped (the learned rate lost); images: "no images.pt"
    _refused(_import(src, tmp_path / "o.safetensors"), capsys, "not a regular file")
    assert not (tmp_path / "o.safetensors").exists()


def test_an_empty_source_is_not_the_working_directory(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    _refused(_import("", tmp_path / "o.safetensors"), capsys, "empty path")  # was: cwd read as an image folder


@pytest.mark.parametrize("blocker", ["o.safetensors", "o.json"])
def test_an_output_whose_set_or_sidecar_is_a_directory_is_refused_before_work(tmp_path, capsys, blocker):
    src = _ddranking(tmp_path / "src")
    (tmp_path / "out" / blocker).mkdir(parents=True)
    # was: the set written without its sidecar (o.json) or an error naming a temp file after the work
    _refused(_import(src, tmp_path / "out" / "o"), capsys, "it is a directory")
    assert _files(tmp_path / "out") == [tmp_path / "out" / blocker]


@pytest.mark.parametrize("method", ["", "  ", "a\nb"])
def test_a_blank_or_multi_line_method_name_is_refused(tmp_path, capsys, method):
    src = _ddranking(tmp_path / "src")
    _refused(_import(src, tmp_path / "o.safetensors") + ["--method", method], capsys, "--method")
    assert not (tmp_path / "o.safetensors").exists()


# ----------------------------------------------------------------------------- compare

@pytest.fixture()
def ref(tmp_path) -> Path:
    rows = [{"cell_key": f"k{s}", "method": "random", "dataset": "digits", "ipc": 1, "seed": s, "arch": "convnet",
             "protocol": "dc@1ep", "num_models": 1, "acc_last": 50.0 + s} for s in range(3)]
    out = tmp_path / "ref"
    out.mkdir()
    pd.DataFrame(rows).to_parquet(out / "results.parquet")
    return out


def _edited(ref: Path, where: Path, column: str, value) -> Path:
    df = pd.read_parquet(ref / "results.parquet")
    df[column] = [value] * len(df)
    where.mkdir()
    df.to_parquet(where / "results.parquet")
    return where


@pytest.mark.parametrize("column, value, needle", [
    ("method", [1, 2], "holds lists or mappings"),        # was: TypeError unhashable
    ("seed", {"a": 1}, "holds lists or mappings"),
    ("acc_last", np.inf, "must be a finite number"),     # was: "DISAGREE ... inf vs 50.0", exit 1
    ("acc_last", 1e308, "in [0, 100]"),
])
def test_a_damaged_run_table_is_refused_not_compared(ref, tmp_path, capsys, column, value, needle):
    run = _edited(ref, tmp_path / "run", column, value)
    before = _files(tmp_path)
    _refused(["compare", str(run), str(ref)], capsys, needle)
    assert _files(tmp_path) == before


@pytest.mark.parametrize("run, needle", [("", "empty path"), ("{ref}/results.parquet", "is a file")])
def test_compare_paths_that_are_no_results_directory(ref, tmp_path, capsys, monkeypatch, run, needle):
    monkeypatch.chdir(tmp_path)
    _refused(["compare", run.format(ref=ref), str(ref)], capsys, needle)


def test_an_identical_run_still_agrees(ref, capsys):
    assert main(["compare", str(ref), str(ref)]) == 0
    assert capsys.readouterr().out.startswith("agree")


# ----------------------------------------------------------------------------- cost

@pytest.mark.parametrize("argv, needle", [
    (["--repeats-at", "²=1"], "IPC=RUNS"),                        # was: ValueError traceback (isdigit)
    (["--repeats-at", "1=١"], "IPC=RUNS"),                        # was: accepted as 1
    (["--repeats-at", "1=99999999"], "IPC=RUNS"),                 # runs beyond --repeats' own range
    (["--repeats-at", "1=1,1=2"], "IPC=RUNS"),
    (["--protocols", "nosuch"], "unknown evaluation protocol"),   # was: refused after the distillers ran
    (["--eval-ipc", "5000"], "exceeds the smallest class"),       # was: timed on fewer images, silently
    (["--ipc", "5000"], "exceeds the smallest class"),
    (["--threads", "1000000"], "--threads"),                      # was: accepted
])
def test_cost_input_is_refused_before_any_measurement(tmp_path, capsys, no_compute, argv, needle):
    _refused(["cost", "--out", str(tmp_path / "c"), "--methods", "dm", "--ipc", "1", *argv], capsys, needle)
    assert not (tmp_path / "c").exists()


# ----------------------------------------------------------------------------- published

def _published(root, out: Path) -> list[str]:
    return ["published", str(root), "--dataset", "digits", "--out", str(out), "--epochs", "1", "--models", "1",
            "--device", "cpu", "--no-progress"]


def test_published_with_an_empty_root_is_not_the_working_directory(tmp_path, capsys, no_compute, monkeypatch):
    _ddranking(tmp_path / "a")
    monkeypatch.chdir(tmp_path)
    _refused(_published("", tmp_path / "o"), capsys, "empty path")  # was: every cwd folder imported, evaluated
    assert not (tmp_path / "o").exists()


def test_published_with_a_file_as_root_says_so(tmp_path, capsys, no_compute):
    (tmp_path / "f").write_text("x")
    _refused(_published(tmp_path / "f", tmp_path / "o"), capsys, "is not a folder")  # was: "does not exist"


def test_published_never_writes_through_a_linked_sets_folder(tmp_path, capsys, no_compute):
    _ddranking(tmp_path / "root" / "a")
    (tmp_path / "outside").mkdir()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "sets").symlink_to(tmp_path / "outside")
    _refused(_published(tmp_path / "root", tmp_path / "o"), capsys, "symbolic link")  # was: sets written outside
    assert not any((tmp_path / "outside").iterdir())


def test_published_skips_its_own_output_inside_the_root(tmp_path, monkeypatch):
    import bench.published.importers
    from bench.data.datasets import load_dataset
    from bench.published.evaluate import evaluate_published

    root = tmp_path / "root"
    _ddranking(root / "a")
    (root / "out" / "sets").mkdir(parents=True)  # a previous run's output
    seen = []

    def record(folder, *args, **kwargs):
        seen.append(Path(folder).name)
        raise KeyError("stop here")

    monkeypatch.setattr(bench.published.importers, "import_set", record)
    with pytest.raises(KeyError):
        evaluate_published(root, load_dataset("digits"), root / "out", epochs=1, models=1)
    assert seen == ["a"]  # not "out"


# ----------------------------------------------------------------------------- list

def test_list_filter_on_methods_is_refused(capsys):
    _refused(["list", "methods", "--filter", "resnet*"], capsys, "--filter selects architectures")


@pytest.mark.parametrize("pattern", ["[", "zzz*"])
def test_list_filter_matching_no_timm_model_says_so(capsys, pattern):
    assert main(["list", "archs", "--filter", pattern]) == 0
    out = capsys.readouterr().out
    assert "no timm architecture matches" in out and "convnet" in out


def test_class_folders_that_mix_numbers_and_names_are_refused(tmp_path, capsys, no_compute):
    """Sorted as text, "10" would become class 0 and "2" class 1 without a word (issue 26 follow-up)."""
    import numpy as np
    from PIL import Image

    src = tmp_path / "folder"
    for name in ("2", "10", "misc"):
        (src / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8), mode="L").save(src / name / "0.png")
    _refused(["import", str(src), "--dataset", "digits", "--out", str(tmp_path / "o.safetensors")], capsys,
             "mix class numbers")
    assert not (tmp_path / "o.safetensors").exists()
