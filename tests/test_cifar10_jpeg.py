"""CIFAR-10 from the offline JPEG copy (``cifar10-jpeg``): located, decoded, cached, identified, and
given CIFAR-10's settings while never sharing CIFAR-10's name. Tests that need the shared archive skip
with the place they looked (tests/conftest.py ``cifar10_jpeg_archive``)."""

from __future__ import annotations

import io
import tarfile

import pytest
import torch

import bench.data.cifar_jpeg as cj
from bench.data.core import make_dataset
from bench.data.datasets import list_datasets, load_dataset, settings_name
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, default_config, distill


@pytest.fixture(scope="module")
def cifar(cifar10_jpeg_archive, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DASM_CACHE", str(cache))
        data = cj.load_cifar10_jpeg(data_root=str(cifar10_jpeg_archive.parent.parent))
    return data, cache


def test_the_shared_copy_loads_as_the_readme_describes(cifar):
    data, _ = cifar
    assert data.name == "cifar10-jpeg" and data.class_names[:3] == ["airplane", "automobile", "bird"]
    assert data.extra["sha256"] == cj.PUBLISHED_SHA256 and "published archive" in data.extra["source"]
    # make_dataset's stratified 10% validation split; load_dataset("full") puts it back
    assert (len(data.train), len(data.val), len(data.test)) == (45000, 5000, 10000)
    assert data.train.class_counts() == [4500] * 10 and data.test.class_counts() == [1000] * 10
    assert data.train.data.dtype == torch.uint8 and tuple(data.train.data.shape[1:]) == (3, 32, 32)
    # the README's per-channel train mean decoded with PIL: 0.4913/0.4821/0.4465 (the original 0.4914/...)
    x = torch.cat([data.train.data, data.val.data]).float().div(255)
    assert torch.allclose(x.mean((0, 2, 3)), torch.tensor([0.4913, 0.4821, 0.4465]), atol=6e-5)
    assert data.mean == (0.4914, 0.4822, 0.4465)  # CIFAR-10's normalisation, not the copy's own


def test_a_second_load_reads_the_cache_and_never_decodes(cifar, cifar10_jpeg_archive, monkeypatch):
    data, cache = cifar
    files = list(cache.glob("cifar10-jpeg-*.npz"))
    assert [f.name for f in files] == [f"cifar10-jpeg-{cj.PUBLISHED_SHA256}.npz"]
    monkeypatch.setenv("DASM_CACHE", str(cache))
    monkeypatch.setattr(cj, "_decode", lambda *a: pytest.fail("decoded although the cache holds the copy"))
    again = cj.load_cifar10_jpeg(data_root=str(cifar10_jpeg_archive))  # the archive path itself works too
    assert torch.equal(again.train.data, data.train.data) and torch.equal(again.test.labels, data.test.labels)


def test_a_corrupt_cache_is_decoded_again(cifar, cifar10_jpeg_archive, monkeypatch, tmp_path):
    monkeypatch.setenv("DASM_CACHE", str(tmp_path))
    (tmp_path / f"cifar10-jpeg-{cj.PUBLISHED_SHA256}.npz").write_bytes(b"not a zip")
    again = cj.load_cifar10_jpeg(data_root=str(cifar10_jpeg_archive))
    assert torch.equal(again.test.data, cifar[0].test.data)


def test_the_extracted_folder_gives_the_same_images(cifar, cifar10_jpeg_archive, tmp_path):
    with tarfile.open(cifar10_jpeg_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    folder = cj.load_cifar10_jpeg(data_root=str(tmp_path))  # finds tmp_path/cifar10-jpeg/{train,test}
    assert torch.equal(folder.train.data, cifar[0].train.data) and torch.equal(folder.test.labels, cifar[0].test.labels)
    assert folder.extra["sha256"] != cj.PUBLISHED_SHA256 and "extracted folder" in folder.extra["source"]
    assert len(folder.extra["sha256"]) == 64


def _archive(path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


@pytest.mark.parametrize("members, message", [
    ({"cifar10-jpeg/train/cow/0.jpg": b"x"}, "outside the expected"),
    ({"cifar10-jpeg/valid/cat/0.jpg": b"x"}, "outside the expected"),
    ({"cifar10-jpeg/train/cat/0.jpg": b"x"}, "images per class"),
    ({"cifar10-jpeg/train/cat/0.jpg": b"x" * (cj._MAX_FILE_BYTES + 1)}, "not a small regular file"),
])
def test_an_archive_of_another_shape_is_one_line(tmp_path, monkeypatch, members, message):
    monkeypatch.setenv("DASM_CACHE", str(tmp_path / "cache"))
    _archive(tmp_path / cj.ARCHIVE, members)
    with pytest.raises(BenchError, match=message):
        cj.load_cifar10_jpeg(data_root=str(tmp_path))


def test_truncated_or_missing_copies_are_one_line(tmp_path, monkeypatch, cifar10_jpeg_archive):
    monkeypatch.setenv("DASM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BenchError, match="not found under"):
        cj.load_cifar10_jpeg(data_root=str(tmp_path))
    (tmp_path / cj.ARCHIVE).write_bytes(cifar10_jpeg_archive.read_bytes()[:100_000])
    with pytest.raises(BenchError, match="could not be read"):
        cj.load_cifar10_jpeg(data_root=str(tmp_path))
    with pytest.raises(BenchError, match="nothing to --download"):
        cj.load_cifar10_jpeg(data_root=str(cifar10_jpeg_archive), download=True)


def test_the_copy_has_cifar10s_settings_under_its_own_name():
    assert "cifar10-jpeg" in list_datasets() and settings_name("cifar10-jpeg") == "cifar10"
    assert settings_name("digits") == "digits"
    for method, ipc in [("dc", 10), ("dsa", 1), ("dm", 50), ("idc", 10), ("mtt", 1), ("dasm", 10), ("herding", 1)]:
        assert default_config(method, "cifar10-jpeg", ipc) == default_config(method, "cifar10", ipc), method


def test_sets_and_rows_record_the_copy_they_came_from():
    from bench.store.results import results_row
    from bench.train.evaluation import EvalResult

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(40) % 2
    data = make_dataset("two", x, y, x[:10], y[:10], ["a", "b"], [0.5] * 3, [0.25] * 3,
                        extra={"sha256": "ab" * 32})
    syn = distill("random", DistillRequest(data, ipc=2, seed=0))
    assert syn.metadata["data_sha256"] == "ab" * 32
    res = EvalResult(arch="convnet", protocol="dc", acc_last=[50.0], seconds=1.0)
    assert results_row(syn, res, "k")["data_sha256"] == "ab" * 32
    plain = distill("random", DistillRequest(load_dataset("digits"), ipc=1, seed=0))
    assert "data_sha256" not in plain.metadata and "data_sha256" not in results_row(plain, res, "k")
