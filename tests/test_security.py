"""Security: no code runs from a data file, nothing is written outside an output directory, and
files get the umask's mode. Each attack here worked on the code before issue 11."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest
from test_datasets_torchvision import write_cifar10

from bench.cli.main import main
from bench.data import torchvision_sets as dtv
from bench.data.cifar_files import RestrictedUnpickler, load_pickle, read_batch
from bench.errors import BenchError
from bench.paths import check_writable, safe_slug


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


class _Payload:
    """Unpickling this runs a shell command (``os.system``) that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path: Path, marker: Path, wrap: bool = True) -> None:
    obj = {"data": _Payload(marker), "labels": [0]} if wrap else _Payload(marker)
    path.write_bytes(pickle.dumps(obj, protocol=2))


# ----------------------------------------------------------------------------- unpickling

@pytest.mark.parametrize("victim", ["data_batch_1", "test_batch", "batches.meta"])
def test_crafted_cifar_pickle_runs_no_code(tmp_path, capsys, victim):
    write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    _plant(tmp_path / "cifar-10-batches-py" / victim, marker)
    out = tmp_path / "out" / "set.safetensors"
    code = main(["distill", "--method", "random", "--dataset", "cifar10", "--ipc", "1", "--data-root", str(tmp_path),
                 "--no-verify-checksums", "--out", str(out), "--no-progress"])
    assert code == 2
    msg = _err_line(capsys)
    assert "could not be read" in msg and "refused to load posix.system" in msg
    assert not marker.exists(), "the pickle ran a shell command"
    assert not out.exists()


def test_restricted_unpickler_refuses_every_other_global(tmp_path):
    marker = tmp_path / "m"
    for obj in (_Payload(marker), {"x": {1, 2}}, [eval], np.float64(1.0)):  # os.system, builtins.set/eval, scalar
        path = tmp_path / "p.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(pickle.UnpicklingError, match="refused"):
            load_pickle(path)
    assert not marker.exists()
    assert RestrictedUnpickler.find_class is not pickle.Unpickler.find_class


def test_cifar_batch_in_the_real_format_reads_back(tmp_path):
    # What real CIFAR batches hold: a dict of a uint8 N x 3072 array and int lists (protocol 2).
    rows = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": rows, b"labels": [3, 7], b"filenames": [b"a.png", b"b.png"]}, protocol=2))
    x, y = read_batch(path, "labels")
    assert x.shape == (2, 3, 32, 32) and np.array_equal(x.reshape(2, -1), rows) and y.tolist() == [3, 7]
    path.write_bytes(pickle.dumps({"data": rows.astype(np.float32), "labels": [3, 7]}, protocol=2))
    with pytest.raises(ValueError, match="uint8"):
        read_batch(path, "labels")


# ----------------------------------------------------------------------------- checksums

def test_published_md5s_are_checked_by_default(tmp_path, capsys, monkeypatch):
    write_cifar10(tmp_path)
    monkeypatch.delenv(dtv.VERIFY_ENV, raising=False)
    code = main(["distill", "--method", "random", "--dataset", "cifar10", "--ipc", "1", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "s.safetensors"), "--no-progress"])
    assert code == 2
    msg = _err_line(capsys)
    assert "published MD5" in msg and "--no-verify-checksums" in msg and "--download" in msg
    with pytest.raises(BenchError, match="published MD5"):
        dtv.load_cifar10(data_root=str(tmp_path))
    assert dtv.load_cifar10(data_root=str(tmp_path), verify=False).num_classes == 10  # re-packed copy: opt-out


def test_matching_md5s_load_and_one_changed_byte_is_caught(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"

    def md5(name: str) -> str:
        return hashlib.md5((folder / name).read_bytes()).hexdigest()

    # publish our files' MD5s in place of the real ones: the check passes on exact copies only
    monkeypatch.setattr(tvd.CIFAR10, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(tvd.CIFAR10, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": md5("batches.meta")})
    assert len(dtv.load_cifar10(data_root=str(tmp_path), verify=True).test) == 20
    blob = bytearray((folder / "data_batch_4").read_bytes())
    blob[-50] ^= 1
    (folder / "data_batch_4").write_bytes(bytes(blob))
    with pytest.raises(BenchError, match="data_batch_4 does not match its published MD5"):
        dtv.load_cifar10(data_root=str(tmp_path), verify=True)


def test_svhn_md5_checked_by_default(tmp_path):
    from scipy.io import savemat

    for split, n in (("train", 20), ("test", 10)):
        savemat(tmp_path / f"{split}_32x32.mat", {"X": np.zeros((32, 32, 3, n), np.uint8),
                                                  "y": (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]})
    with pytest.raises(BenchError, match="train_32x32.mat does not match its published MD5.*--no-verify-checksums"):
        dtv.load_svhn(data_root=str(tmp_path))
    assert len(dtv.load_svhn(data_root=str(tmp_path), verify=False).test) == 10


# ----------------------------------------------------------------------------- paths

@pytest.mark.parametrize("value, slug", [
    ("../../../../x/pwned", "x-pwned"), ("dc-nodsa", "dc-nodsa"), ("resnet18.a1_in1k", "resnet18.a1_in1k"),
    ("..", "unnamed"), (".hidden", "hidden"), ("a/b\\c d", "a-b-c-d"), ("/etc/passwd", "etc-passwd"),
    ("x\x00y", "x-y"), ("", "unnamed"), (10, "10"),
])
def test_safe_slug(value, slug):
    assert safe_slug(value) == slug
    assert "/" not in safe_slug(value) and ".." not in safe_slug(value)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_crafted_sidecar_cannot_write_outside_the_results_directory(tmp_path, capsys):
    res = tmp_path / "a" / "b" / "c" / "res"
    syn = tmp_path / "sets" / "r.safetensors"
    assert main(["distill", "--method", "random", "--ipc", "1", "--out", str(syn), "--no-progress"]) == 0
    side = syn.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["metadata"]["method"] = "../../../../x/pwned"  # the checksum covers only the tensor bytes
    side.write_text(json.dumps(meta))
    before = _files(tmp_path)
    assert main(["evaluate", str(syn), "--protocol", "dc-nodsa", "--epochs", "1", "--models", "1",
                 "--results", str(res), "--no-progress"]) == 0
    # the set lives outside the results dir: plot draws it from the path stored in the row
    assert main(["plot", str(res)]) == 0
    new = _files(tmp_path) - before
    outside = sorted(str(p) for p in new if res not in p.parents)
    assert not outside, f"written outside {res}: {outside}"
    assert any("x-pwned" in p.name for p in new)  # the picture exists, under a slug


def test_sweep_study_name_stays_under_results_sweeps():
    from bench.run.sweep import SweepSpec

    spec = SweepSpec(study="../../x")
    assert spec.out_dir == Path("results/sweeps/x")
    assert spec.storage_url == "sqlite:///results/sweeps/x/study.db"  # inside its output directory (issue 26)


def test_check_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BenchError, match="is a file, not a directory"):
        check_writable(tmp_path / "file" / "sub" / "out.safetensors", "--out")
    with pytest.raises(BenchError, match="it is a directory"):
        check_writable(tmp_path, "--out")
    with pytest.raises(BenchError, match="it is a file"):
        check_writable(tmp_path / "file", "--results", directory=True)
    assert check_writable(tmp_path / "new" / "deeper", "--results", directory=True) == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check creates nothing


# ----------------------------------------------------------------------------- modes

@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_umask_mode(tmp_path, umask):
    from bench.files import write_atomically
    from bench.store.results import ResultsTable

    old = os.umask(umask)
    try:
        write_atomically(tmp_path / "a.bin", b"x")
        table = ResultsTable(tmp_path / "res")
        table.append([{"cell_key": "k", "method": "m"}])
        table.consolidate()
    finally:
        os.umask(old)
    want = 0o666 & ~umask
    for path in (tmp_path / "a.bin", tmp_path / "res" / "cells" / "k.json",
                 tmp_path / "res" / "results.parquet", tmp_path / "res" / "results.csv"):
        assert stat.S_IMODE(path.stat().st_mode) == want, (path, oct(path.stat().st_mode))
