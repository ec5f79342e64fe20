"""Property-based tests of hostile files (issue 26): generated malformed synthetic sets, sidecars,
results cells, experiment specs and importer inputs (command-line numbers: tests/test_hostile_flags.py).

The property, for every input: ``dasm-bench`` either succeeds - and what it accepted lies inside
the documented range (``bench.bounds``) - or exits 2 with exactly one stderr line ``error: ...``;
never an uncaught exception, never a write outside the example's own folder. No example trains a
model: where training would start, a stub raises ``Reached`` with what it was given.

Reproducible and bounded: ``derandomize=True`` and no example database (CI draws the same
examples every run), ``max_examples`` sized so the whole file takes about a minute on one core.
Strategies: ``tests/hostile_inputs.py``; settings and the CLI check: ``tests/hostile_cli.py``. A
bug a property found is pinned as an ``@example``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_cli import HOSTILE, SCALE, Reached, assert_in, cli, fresh, tree
from hostile_inputs import (
    BASE_SPEC,
    CELL_FIELDS,
    JSON_VALUES,
    SetCase,
    cell_files,
    image_folders,
    set_cases,
    spec_texts,
    to_toml,
    write_folder,
    write_set,
    zca_blob,
    zca_files,
)
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from bench.bounds import MAX_CONFIG_FLOAT, MAX_CONFIG_INT, MAX_EPOCHS, MAX_IPC, MAX_LR, MAX_MODELS, MAX_SEED


@pytest.fixture
def no_training(monkeypatch):
    import bench.train.evaluation

    def stub(images, labels, data, arch, protocol, *args, target=None, **kwargs):
        raise Reached(images, labels, protocol, target)

    monkeypatch.setattr(bench.train.evaluation, "evaluate_training_set", stub)


# ----------------------------------------------------------------------------- (1), (2) synthetic sets

def _evaluate(path: Path, capsys) -> tuple[int, Reached | None]:
    try:
        return cli(["evaluate", str(path), "--models", "1", "--device", "cpu", "--no-progress"], capsys)[0], None
    except Reached as reached:
        event("accepted")
        return 0, reached


def _check_accepted_set(path: Path, reached: Reached) -> None:
    from bench.store.synthetic import SyntheticSet

    images, labels, protocol, target = reached.args
    assert images.dtype == torch.float32 and tuple(images.shape[1:]) == (1, 8, 8) and len(images)
    assert torch.isfinite(images).all(), "training would start on NaN/inf images"
    if labels.ndim == 1:
        assert labels.dtype == torch.int64 and 0 <= int(labels.min()) and int(labels.max()) < 10
    else:
        assert labels.shape == (len(images), 10) and torch.isfinite(labels).all()
    assert_in(protocol.lr, 0, MAX_LR, "the training learning rate", low_open=True)
    assert_in(protocol.epochs, 1, MAX_EPOCHS, "the training epochs")
    assert target is None or torch.isfinite(target.images).all(), "the test split became NaN/inf"
    syn = SyntheticSet.load(path)
    assert_in(syn.factor, 1, 16, "the decoder factor")
    for key, high in (("ipc", MAX_IPC), ("seed", MAX_SEED)):
        if syn.metadata.get(key) is not None:
            assert_in(syn.metadata[key], 0, high, f"metadata {key}")


@settings(HOSTILE, max_examples=int(60 * SCALE))
@given(case=set_cases())
def test_synthetic_set_files(case: SetCase, tmp_path, capsys, no_training):
    """Wrong dtypes and shapes, NaN/inf/huge values, empty sets, damaged bytes (with and without a
    matching checksum), sidecars that are not JSON objects: evaluated, or one line."""
    folder = fresh(tmp_path)
    path = write_set(case, folder / "s.safetensors")
    before = tree(tmp_path)
    code, reached = _evaluate(path, capsys)
    assert tree(tmp_path) == before, "evaluate without --results wrote a file"
    if reached is not None:
        _check_accepted_set(path, reached)


@settings(HOSTILE, max_examples=int(60 * SCALE))
@given(case=set_cases(tensor_edits=False))
def test_sidecar_fields(case: SetCase, tmp_path, capsys, no_training):
    """Valid tensors, a sidecar with fields of the wrong type or out of range (factor, format_version,
    shapes, metadata ipc/seed/syn_lr/eval_protocol/zca): evaluated inside the ranges, or one line."""
    path = write_set(case, fresh(tmp_path) / "s.safetensors")
    code, reached = _evaluate(path, capsys)
    if reached is not None:
        _check_accepted_set(path, reached)


@settings(HOSTILE, max_examples=int(30 * SCALE))
@given(zca=zca_files())
@example(zca=zca_blob(transform=torch.tensor(0.0)))  # RuntimeError from matmul, a traceback
@example(zca=zca_blob(mean=torch.full((1, 64), math.nan)))  # training would start on NaN images
@example(zca=zca_blob(mean=torch.zeros(1, 3), transform=torch.eye(3), inverse=torch.eye(3)))  # not 64 values
def test_zca_transform_files(zca: bytes, tmp_path, capsys, no_training):
    """A set whose sidecar names a ZCA transform (``zca_file``, as our MTT's sets do) that has the
    wrong shapes, dtypes, NaN or metadata: evaluated in a finite whitened space, or one line."""
    folder = fresh(tmp_path)
    (folder / "zca.safetensors").write_bytes(zca)
    case = SetCase({"images": torch.zeros(10, 1, 8, 8), "labels": torch.arange(10)},
                   [(("metadata", "zca_file"), str(folder / "zca.safetensors"))])
    path = write_set(case, folder / "s.safetensors")
    code, reached = _evaluate(path, capsys)
    if reached is not None:
        _check_accepted_set(path, reached)


# ----------------------------------------------------------------------------- (3) results cells

_TEXT_FIELDS = ("method", "dataset", "arch", "protocol", "code_version", "config_hash", "synthetic_path",
                "train_split")


def _check_accepted_row(row: dict[str, Any]) -> None:
    for key, (low, high) in {"ipc": (1, MAX_IPC), "seed": (0, MAX_SEED), "num_models": (1, MAX_MODELS)}.items():
        if row.get(key) is not None and not (isinstance(row[key], float) and math.isnan(row[key])):
            assert float(row[key]).is_integer(), f"{key} = {row[key]!r}"
            assert_in(row[key], low, high, key)
    for key in ("acc_last", "acc_last_std", "acc_best", "acc_best_std", "distill_seconds", "eval_seconds"):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            assert_in(value, 0, 100 if key.startswith("acc") else math.inf, key)
    for key in _TEXT_FIELDS:
        value = row.get(key)
        assert value is None or isinstance(value, str) or (isinstance(value, float) and math.isnan(value)), (key, value)


def _cell(key: str = "k0", drop: str = "", **fields: Any) -> tuple[str, bytes]:
    import json

    row = {"cell_key": key, **CELL_FIELDS, **fields}
    return f"{key}.json", json.dumps({k: v for k, v in row.items() if k != drop}).encode()


@settings(HOSTILE, max_examples=int(25 * SCALE))
@given(files=cell_files())
@example(files=[_cell(drop="config_hash")])  # AttributeError: 'Pandas' object has no attribute 'config_hash'
@example(files=[_cell(drop="distill_seconds")])  # KeyError 'distill_seconds' in the seconds figure
@example(files=[_cell(ipc=None, seed=None), _cell("k1")])  # an imported set's row: int(NaN) in the IPC table
@example(files=[_cell(method="")])  # numpy: "number sections must be larger than 0"
def test_results_cells_then_plot(files: list[tuple[str, bytes]], tmp_path, capsys):
    """Cells with fields of the wrong type, odd numbers, names that do not match their key, or no
    row at all: ``dasm-bench plot`` draws them (every value in range) or says which cell, in one line."""
    import json

    from bench.store.results import ResultsTable

    res = fresh(tmp_path)
    (res / "cells").mkdir()
    for name, content in files:
        (res / "cells" / name).write_bytes(content)
    outside = tree(tmp_path) - tree(res)
    code, _, _ = cli(["plot", str(res)], capsys)
    assert tree(tmp_path) - tree(res) == outside, "plot wrote outside its results directory"
    # the other reader of cells: a table compared with itself agrees (0), or is refused in one line
    assert cli(["compare", str(res), str(res), "--verbose"], capsys, answers=(1,))[0] in (0, 2)
    if code == 0:
        assert (res / "results.parquet").is_file() and (res / "results.csv").is_file()
        for name, content in files:
            if not name.startswith("."):
                _check_accepted_row(json.loads(content))
        assert len(ResultsTable(res).load()) == sum(not n.startswith(".") for n, _ in files)


# ----------------------------------------------------------------------------- (4) experiment specs

def _check_accepted_spec(path: Path, cwd: Path) -> None:
    from bench.spec.experiment import load_spec

    spec = load_spec(path, warn=lambda message: None)
    for ipc in spec.ipcs:
        assert_in(ipc, 1, MAX_IPC, "spec ipc")
    for seed in spec.seeds:
        assert_in(seed, 0, MAX_SEED, "spec seed")
    if spec.epochs is not None:
        assert_in(spec.epochs, 1, MAX_EPOCHS, "spec epochs")
    assert_in(spec.num_models, 1, MAX_MODELS, "spec models")
    if spec.full_data_accuracy is not None:
        assert_in(spec.full_data_accuracy, 0, 100, "spec full_data_accuracy")
    # a spec's out cannot leave the working directory (the run writes there)
    assert cwd in (cwd / spec.default_out).resolve().parents or (cwd / spec.default_out).resolve() == cwd
    for entry in spec.methods:
        for key, value in entry.overrides.items():
            if isinstance(value, float):
                assert_in(abs(value), 0, MAX_CONFIG_FLOAT, f"{entry.name}.{key}")
            elif isinstance(value, int) and not isinstance(value, bool):
                assert_in(abs(value), 0, MAX_CONFIG_INT, f"{entry.name}.{key}")


@settings(HOSTILE, max_examples=int(60 * SCALE))
@given(text=spec_texts(), give_out=st.booleans())
# out = "\u0000": a ValueError traceback ("embedded null byte") from the results folder's scandir
@example(text=to_toml({**BASE_SPEC, "out": "\x00"}), give_out=False)
# out = "\u0000": a ValueError traceback ("embedded null byte") from the results folder's scandir
def test_spec_files_plan(text: str, give_out: bool, tmp_path, capsys, monkeypatch):
    """Specs with odd seeds, IPCs, epochs, models, learning rates, protocols and out paths (``../..``,
    absolute, NUL): ``run SPEC --plan`` prints the plan of an in-range spec, or one line; it writes
    nothing, and an accepted spec's out stays inside the working directory."""
    cwd = tmp_path / "a" / "b" / "cwd"
    cwd.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    folder = fresh(cwd)
    spec = folder / "spec.toml"
    spec.write_text(text, encoding="utf-8", errors="surrogatepass")
    before = tree(tmp_path)
    argv = ["run", str(spec), "--plan"] + (["--out", str(folder / "res")] if give_out else [])
    code, out, _ = cli(argv, capsys)
    assert tree(tmp_path) == before, "--plan wrote a file"
    if code == 0:
        assert "evaluation cells" in out
        _check_accepted_spec(spec, cwd)


# ----------------------------------------------------------------------------- (5) importers

@settings(HOSTILE, max_examples=int(40 * SCALE))
@given(folders=image_folders())
def test_import_image_folders(folders, tmp_path, capsys):
    """Odd class-folder names (``01`` beside ``1``, ``²``, hidden, long), wrong sizes, colour modes,
    garbage bytes, truncated files, decompression-bomb headers, a folder named like an image."""
    from bench.store.synthetic import SyntheticSet

    folder = fresh(tmp_path)
    source = write_folder(folders, folder / "src")
    out = folder / "out" / "i.safetensors"
    before = tree(tmp_path)
    code, _, _ = cli(["import", str(source), "--dataset", "digits", "--out", str(out)], capsys)
    created = tree(tmp_path) - before
    assert created <= {out.parent, out, out.with_suffix(".json")}, sorted(map(str, created))
    if code == 0:
        syn = SyntheticSet.load(out)
        assert tuple(syn.images.shape[1:]) == (1, 8, 8) and torch.isfinite(syn.images).all()
        assert 0 <= int(syn.labels.min()) and int(syn.labels.max()) < 10
        images = sum(1 for folder_name, files in folders.items() for name, data in files
                     if not folder_name.startswith(".")  # hidden folders are no classes (a .git, a .DS_Store)
                     and data is not None and Path(name).suffix.lower() in (".png", ".jpg", ".jpeg"))
        assert len(syn) == images  # every image file in a class folder, none silently dropped
    else:
        assert created == set(), "a refused import left files"


_ODD_TENSORS = st.one_of(
    st.just(torch.zeros(10, 1, 8, 8, dtype=torch.float64)), st.just(torch.full((10, 10), math.nan)),
    st.just(torch.zeros(10, 1, 8, 8, dtype=torch.complex64)), st.just(torch.zeros(10, dtype=torch.uint8)),
    st.just(torch.zeros(0, 1, 8, 8)), st.just(torch.zeros(10, 3, 8, 8)), st.just(torch.full((10,), 1e30)),
    st.just(torch.full((10, 1, 8, 8), 1e300, dtype=torch.float64)), st.just(torch.tensor(0.5)),
    st.just(torch.full((10,), 0.5)), st.just(torch.arange(10) - 1), st.just(torch.zeros(9, dtype=torch.int64)),
    st.floats().map(lambda v: torch.tensor(v, dtype=torch.float64)), st.floats(), st.integers(),
    st.just([1, 2]), st.just({"a": torch.zeros(1)}), st.just("text"))
_LR_VALUES = st.sampled_from([0.01, 0.0, -0.01, 10.0, 10.5, 1e3, math.inf, math.nan, 1e308]).map(torch.tensor)


@st.composite
def ddranking_files(draw: st.DrawFn) -> dict[str, Any]:
    """images.pt, labels.pt and lr.pt of a valid DD-Ranking set, one of them odd (or not a torch file)."""
    files: dict[str, Any] = {"images.pt": torch.zeros(10, 1, 8, 8),
                             "labels.pt": draw(st.sampled_from([torch.arange(10) % 10, torch.eye(10),
                                                                torch.linspace(-3, 3, 100).view(10, 10)])),
                             "lr.pt": draw(st.one_of(st.none(), _LR_VALUES))}
    odd = draw(st.sampled_from([None, "images.pt", "labels.pt", "lr.pt"]))
    if odd is not None:
        files[odd] = draw(st.one_of(_ODD_TENSORS, st.sampled_from([b"", b"PK\x03\x04", b"\x80\x02}q."])))
    return files


@settings(HOSTILE, max_examples=int(40 * SCALE))
@given(files=ddranking_files())
def test_import_torch_files(files: dict[str, Any], tmp_path, capsys):
    """A DD-Ranking folder (images.pt, labels.pt, lr.pt) holding wrong shapes, dtypes (complex),
    NaN, inf, huge learning rates, non-tensors or bytes that are no torch file: imported or one line."""
    from bench.store.synthetic import SyntheticSet

    folder = fresh(tmp_path)
    src = folder / "src"
    src.mkdir()
    for name, value in files.items():
        if isinstance(value, bytes):
            (src / name).write_bytes(value)
        elif value is not None:
            buf = io.BytesIO()
            torch.save(value, buf)
            (src / name).write_bytes(buf.getvalue())
    out = folder / "i.safetensors"
    code, _, _ = cli(["import", str(src), "--dataset", "digits", "--out", str(out)], capsys)
    if code == 0:
        syn = SyntheticSet.load(out)
        assert torch.isfinite(syn.images).all() and tuple(syn.images.shape[1:]) == (1, 8, 8)
        if "syn_lr" in syn.metadata:
            assert_in(syn.metadata["syn_lr"], 0, MAX_LR, "imported learning rate", low_open=True)


# ----------------------------------------------------------------------------- published-sets tables

_PUBLISHED_ROW = {"folder": "dc-ipc1", "format": "dc", "images": "10", "ipc": "1", "labels": "hard", "zca": "False",
                  "protocol": "dc", "lr": "0.01", "arch": "convnet", "models": "1", "measured_mean": "50.0",
                  "measured_std": "1.0", "reported": "DC paper 28.3 +- 0.5", "file_reported": "", "code_version": "v"}
_CSV_TEXT = st.one_of(st.sampled_from(["", "None", "nan", "inf", "-1", "0", "1e400", "1.5", "101", "1e308",
                                       "../../x", "a,b", 'a"b', "x\ny", "\x00"]), st.text(max_size=6))


_HUGE_FIELD = b"folder\n" + b"x" * 200_000 + b"\n"  # beyond csv's field size limit


def _published_csv(row: dict[str, str]) -> bytes:
    import csv

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return buf.getvalue().encode("utf-8", errors="surrogatepass")


@st.composite
def published_tables(draw: st.DrawFn) -> bytes:
    """``published.csv`` as ``write_table`` writes it, with odd fields, a column gone, or bytes that are no CSV."""
    if draw(st.integers(0, 9)) == 5:
        return draw(st.sampled_from([b"\xff\xfe\x00", _HUGE_FIELD, b"", b"a,b\n1,2\n"]))
    row = dict(_PUBLISHED_ROW)
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(sorted(row)))
        if draw(st.integers(0, 5)) == 3:
            del row[key]
        else:
            row[key] = draw(_CSV_TEXT)
    return _published_csv(row)


@settings(HOSTILE, max_examples=int(40 * SCALE))
@given(table=published_tables())
@example(table=b"\xff\xfe\x00")  # UnicodeDecodeError traceback
@example(table=_HUGE_FIELD)  # _csv.Error "field larger than field limit" traceback
@example(table=_published_csv({**_PUBLISHED_ROW, "lr": "nan"}))  # accepted and printed as "(nan)"
@example(table=_published_csv({**_PUBLISHED_ROW, "measured_mean": "-5"}))  # accepted as a -5% accuracy
def test_published_tables_then_plot(table: bytes, tmp_path, capsys):
    """``dasm-bench plot OUT`` of a ``dasm-bench published`` folder re-renders published.md from a
    published.csv with odd numbers, names or bytes: every number in range, or one line."""
    from bench.published.evaluate import read_table

    out = fresh(tmp_path)
    (out / "sets").mkdir()
    write_set(SetCase({"images": torch.zeros(10, 1, 8, 8), "labels": torch.arange(10)}),
              out / "sets" / "dc-ipc1.safetensors")
    (out / "published.csv").write_bytes(table)
    outside = tree(tmp_path) - tree(out)
    code, _, _ = cli(["plot", str(out)], capsys)
    assert tree(tmp_path) - tree(out) == outside, "plot wrote outside the folder"
    if code == 0:
        for row in read_table(out):
            assert row.folder == "dc-ipc1"
            assert row.ipc is None or 1 <= row.ipc <= MAX_IPC
            assert_in(row.images, 1, math.inf, "images")
            assert_in(row.models, 1, MAX_MODELS, "models")
            assert_in(row.lr, 0, MAX_LR, "lr", low_open=True)
            assert_in(row.measured_mean, 0, 100, "measured_mean")
            assert_in(row.measured_std, 0, 100, "measured_std")


# ----------------------------------------------------------------------------- full-data references

_FULL_RECORD = st.fixed_dictionaries({"acc": st.one_of(st.floats(0, 100), JSON_VALUES)},
                                     optional={"protocol": JSON_VALUES, "dataset": JSON_VALUES, "arch": JSON_VALUES})


@settings(HOSTILE, max_examples=int(150 * SCALE))
@given(record=st.one_of(JSON_VALUES, _FULL_RECORD,
                        st.fixed_dictionaries({"by_protocol": st.dictionaries(st.text(max_size=4), _FULL_RECORD,
                                                                             max_size=2)})))
@example(record={"by_protocol": {"dc": {"acc": math.nan, "protocol": "dc"}}})  # the table read "full data | nan"
@example(record={"by_protocol": {"dc": {"acc": True, "protocol": "dc"}}})  # ... "| 1.0 |"
@example(record={"acc": 50, "protocol": ["x"]})  # ... "full data (['x'])"
def test_full_data_records(record: Any, tmp_path):
    """``full_data.json`` (the full-data reference every table and figure of plot draws): each record
    read back is a percentage with text names; anything else is dropped, never raised or drawn."""
    import json

    from bench.store.full_data import read_full_data

    out = fresh(tmp_path)
    (out / "full_data.json").write_text(json.dumps(record))
    for key, rec in read_full_data(out).items():
        event("kept")
        assert isinstance(key, str) and type(rec["acc"]) is float and 0 <= rec["acc"] <= 100, rec
        assert all(isinstance(rec.get(k), (str, type(None))) for k in ("protocol", "dataset", "arch")), rec
