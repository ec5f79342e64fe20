"""File-backed loaders, fed small files written in the datasets' real on-disk formats.

No network here: each test writes a miniature dataset into a tmp dir exactly where torchvision
(or our TinyImageNet / image-folder reader) looks, then calls the registered loader directly.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from urllib.error import URLError

import numpy as np
import pytest
import torch
from PIL import Image

import bench.data.torchvision_sets as dtv
from bench.data.datasets import list_datasets
from bench.errors import BenchError

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ----------------------------------------------------------------------------- helpers

def _cifar_images(ids: np.ndarray) -> np.ndarray:
    """N x 3072 uint8 rows (R plane, G plane, B plane, each 32x32 row-major).

    Every image carries its id in R[0,0], so the test can find it after the val split shuffles.
    """
    rows = np.zeros((len(ids), 3072), dtype=np.uint8)
    rows[:, 0] = ids  # R plane, row 0, col 0
    return rows


def _pickle(path, obj) -> None:
    # The real files are Python 2 pickles whose keys unpickle (torchvision uses
    # encoding="latin1") as str 'data', 'labels', ...; Python 3 str keys read back identically.
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(root, per_batch: int = 30, n_test: int = 20) -> dict:
    """5 train batches + test batch + meta under <root>/cifar-10-batches-py; returns what it wrote."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_ids, all_labels = [], []
    for b in range(5):
        ids = np.arange(b * per_batch, (b + 1) * per_batch) + 1  # 1..150, all < 256
        labels = [int(i % 10) for i in ids]
        rows = _cifar_images(ids)
        if b == 1:
            k = 42 - ids[0]             # image with id 42 (label 2)
            rows[k, 1024 + 5 * 32 + 7] = 200   # G plane, row 5, col 7
            rows[k, 2048 + 31 * 32 + 0] = 77   # B plane, row 31, col 0
        _pickle(folder / f"data_batch_{b + 1}",
                {"batch_label": f"training batch {b + 1} of 5", "labels": labels, "data": rows,
                 "filenames": [f"img_{i}.png" for i in ids]})
        all_ids += list(ids)
        all_labels += labels
    test_ids = np.arange(n_test) + 1
    test_rows = _cifar_images(test_ids)
    test_rows[3, 1024 + 10 * 32 + 20] = 99  # test image 3: G at row 10, col 20
    _pickle(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": [int(i % 10) for i in test_ids],
                                    "data": test_rows, "filenames": []})
    _pickle(folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": CIFAR10_NAMES,
                                      "num_vis": 3072})
    return {"ids": all_ids, "labels": all_labels, "test_labels": [int(i % 10) for i in test_ids]}


def _write_idx(path, array: np.ndarray) -> None:
    """IDX file: big-endian magic (0x08 = ubyte, then ndim), big-endian int32 dims, raw bytes."""
    magic = 0x0800 | array.ndim  # 2051 for images, 2049 for labels
    with open(path, "wb") as f:
        f.write(struct.pack(">i", magic))
        f.write(struct.pack(">" + "i" * array.ndim, *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root, folder: str = "MNIST", n_train: int = 60, n_test: int = 10) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        x[:, 0, 0] = np.arange(n)          # id marker
        x[:, 3, 25] = 250 - y               # label-dependent pixel at row 3, col 25
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)


def _find(split, marker: int, channel: int = 0) -> int:
    hits = torch.nonzero(split.data[:, channel, 0, 0] == marker).flatten()
    assert len(hits) == 1, f"marker {marker} found {len(hits)} times"
    return int(hits[0])


# ----------------------------------------------------------------------------- CIFAR

def test_cifar10_real_batches(tmp_path):
    wrote = write_cifar10(tmp_path)
    data = dtv.load_cifar10(data_root=str(tmp_path), verify=False)  # our files cannot match the published MD5s

    assert data.name == "cifar10"
    assert data.class_names == CIFAR10_NAMES
    assert (data.channels, data.image_size, data.num_classes) == (3, 32, 10)
    for split in (data.train, data.val, data.test):
        assert split.data.dtype == torch.uint8
        assert tuple(split.data.shape[1:]) == (3, 32, 32)
    assert data.mean == pytest.approx(dtv.CIFAR10_STATS[0]) and data.std == pytest.approx(dtv.CIFAR10_STATS[1])

    # train + val partition the 150 written images, val is 10% of every class (15 -> 2 each)
    assert len(data.train) + len(data.val) == 150
    assert data.val.class_counts() == [2] * 10
    assert data.train.class_counts() == [13] * 10
    got_ids = sorted(torch.cat([data.train.data[:, 0, 0, 0], data.val.data[:, 0, 0, 0]]).tolist())
    assert got_ids == sorted(wrote["ids"])

    # each image keeps its label, and planes land in the right channel/row/column
    for split in (data.train, data.val):
        assert torch.equal(split.labels, split.data[:, 0, 0, 0].long() % 10)
    split = data.train if (data.train.data[:, 0, 0, 0] == 42).any() else data.val
    img = split.data[_find(split, 42)]
    assert int(img[1, 5, 7]) == 200 and int(img[2, 31, 0]) == 77
    assert int(img.sum()) == 42 + 200 + 77  # nothing else set: no transposed copy elsewhere

    assert len(data.test) == 20 and data.test.labels.tolist() == wrote["test_labels"]
    assert int(data.test.data[3, 1, 10, 20]) == 99 and int(data.test.data[3, 1, 20, 10]) == 0

    # normalisation on access uses the CIFAR-10 constants
    x = data.test.get([3])
    assert x.dtype == torch.float32
    assert float(x[0, 1, 10, 20]) == pytest.approx((99 / 255 - 0.4822) / 0.1994, rel=1e-5)


def test_cifar10_checksum_mismatch_is_fetched_again_when_downloading(tmp_path, monkeypatch):
    write_cifar10(tmp_path)
    # download=True: the published MD5 check fails on our files, so the archive is fetched
    # again, which we stub out.
    import torchvision.datasets.utils as tv_utils

    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(url)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", no_network)
    with pytest.raises(BenchError) as err:
        dtv.load_cifar10(data_root=str(tmp_path), download=True)
    msg = str(err.value)
    assert calls and "cifar-10-python.tar.gz" in calls[0]
    assert "\n" not in msg and "cifar10" in msg and "--download" in msg and "name resolution" in msg
    assert "failed" in msg


def test_cifar_presence_check_still_detects_a_missing_batch(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(BenchError, match="cifar10 not found under .*--download"):
        dtv.load_cifar10(data_root=str(tmp_path))


def test_cifar_corrupt_file_is_one_line_error(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"\x80\x02}q\x00(")  # truncated pickle
    with pytest.raises(BenchError) as err:
        dtv.load_cifar10(data_root=str(tmp_path), verify=False)
    assert "\n" not in str(err.value) and "could not be read" in str(err.value)


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine_names = [f"class_{i:03d}" for i in range(100)]
    n_train = 1000  # 10 per class -> 1 per class in val
    fine = np.arange(n_train) % 100
    rows = np.zeros((n_train, 3072), dtype=np.uint8)
    rows[:, 2048] = fine  # B plane, row 0, col 0 carries the fine label
    _pickle(folder / "train", {"filenames": [], "batch_label": "training batch 1 of 1", "fine_labels": fine.tolist(),
                               "coarse_labels": (fine // 5).tolist(), "data": rows})
    test_fine = np.arange(100)[::-1] % 100
    test_rows = np.zeros((100, 3072), dtype=np.uint8)
    test_rows[:, 2048] = test_fine
    _pickle(folder / "test", {"filenames": [], "batch_label": "testing batch 1 of 1",
                              "fine_labels": test_fine.tolist(), "coarse_labels": (test_fine // 5).tolist(),
                              "data": test_rows})
    _pickle(folder / "meta", {"fine_label_names": fine_names, "coarse_label_names": [f"c{i}" for i in range(20)]})

    data = dtv.load_cifar100(data_root=str(tmp_path), verify=False)
    assert data.class_names == fine_names and data.num_classes == 100
    assert data.val.class_counts() == [1] * 100 and len(data.train) == 900
    for split in (data.train, data.val, data.test):
        assert torch.equal(split.labels, split.data[:, 2, 0, 0].long())  # fine, not coarse, labels
        assert int(split.data[:, :2].sum()) == 0
    assert data.test.labels.tolist() == test_fine.tolist()
    assert data.mean == pytest.approx(dtv.CIFAR100_STATS[0])


# ----------------------------------------------------------------------------- MNIST / SVHN

@pytest.mark.parametrize("name,folder,loader,stats", [
    ("mnist", "MNIST", dtv.load_mnist, dtv.MNIST_STATS),
    ("fashionmnist", "FashionMNIST", dtv.load_fashionmnist, dtv.FASHIONMNIST_STATS),
])
def test_mnist_idx_files(tmp_path, name, folder, loader, stats):
    write_mnist(tmp_path, folder)
    data = loader(data_root=str(tmp_path))

    assert data.name == name and (data.channels, data.image_size, data.num_classes) == (1, 28, 10)
    assert data.mean == pytest.approx(stats[0]) and data.std == pytest.approx(stats[1])
    assert len(data.train) + len(data.val) == 60 and data.val.class_counts() == [1] * 10
    assert len(data.test) == 10
    for split in (data.train, data.val, data.test):
        assert split.data.dtype == torch.uint8 and tuple(split.data.shape[1:]) == (1, 28, 28)
        ids = split.data[:, 0, 0, 0].long()
        assert torch.equal(split.labels, ids % 10)
        assert torch.equal(split.data[:, 0, 3, 25].long(), 250 - split.labels)  # row 3, col 25 (not 25, 3)
    if name == "fashionmnist":
        assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"
    else:
        assert data.class_names[3] == "3 - three"


def test_mnist_looks_in_its_own_folder(tmp_path):
    write_mnist(tmp_path, "MNIST")
    with pytest.raises(BenchError, match="fashionmnist not found under"):
        dtv.load_fashionmnist(data_root=str(tmp_path))


def test_svhn_mat_files(tmp_path):
    from scipy.io import savemat

    for split, n in (("train", 30), ("test", 10)):
        X = np.zeros((32, 32, 3, n), dtype=np.uint8)  # MATLAB layout: H, W, C, N
        y = (np.arange(n) % 10 + 1).astype(np.uint8)[:, None]  # digits 1..10, 10 meaning 0
        X[0, 0, 0, :] = np.arange(n) + 1     # id marker in R at row 0, col 0
        X[2, 30, 1, :] = y[:, 0]             # G at row 2, col 30 holds the raw label
        savemat(tmp_path / f"{split}_32x32.mat", {"X": X, "y": y})

    data = dtv.load_svhn(data_root=str(tmp_path), verify=False)
    assert data.class_names == [str(d) for d in range(10)]
    assert data.mean == pytest.approx(dtv.SVHN_STATS[0])
    assert len(data.train) + len(data.val) == 30 and len(data.test) == 10
    for split in (data.train, data.val, data.test):
        assert split.data.dtype == torch.uint8 and tuple(split.data.shape[1:]) == (3, 32, 32)
        raw = split.data[:, 1, 2, 30].long()
        assert torch.equal(split.labels, raw % 10)  # 10 -> 0
        assert int(split.data[:, 1, 30, 2].sum()) == 0
    assert data.test.labels.tolist() == [(i + 1) % 10 for i in range(10)]


# ----------------------------------------------------------------------------- TinyImageNet / imagefolder

TINY_COLORS = {"n01443537": (250, 10, 10), "n02085620": (10, 250, 10), "n09999999": (10, 10, 250)}


def write_tinyimagenet(root, per_class: int = 10, val_per_class: int = 2) -> None:
    base = root / "tiny-imagenet-200"
    wnids = list(TINY_COLORS)[::-1]  # not sorted in the file: the loader sorts
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)  # unlabelled in the real archive; unused
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (base / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\n"
                                    "n02085620\tChihuahua\n"
                                    "n00000001\tsomething else\n")  # n09999999 has no words entry
    annotations = []
    for wnid, color in TINY_COLORS.items():
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for i in range(per_class):
            img = Image.new("RGB", (64, 64), color)
            if i == 0 and wnid == "n02085620":
                img = img.convert("L")  # the real archive has some grayscale JPEGs
            img.save(folder / f"{wnid}_{i}.JPEG", format="JPEG", quality=95)
        for j in range(val_per_class):
            fname = f"val_{len(annotations)}.JPEG"
            Image.new("RGB", (64, 64), color).save(base / "val" / "images" / fname, format="JPEG", quality=95)
            annotations.append(f"{fname}\t{wnid}\t0\t0\t63\t63")
    # interleave so val order differs from class order
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations[::2] + annotations[1::2]) + "\n")


def test_tinyimagenet_layout(tmp_path):
    write_tinyimagenet(tmp_path)
    data = dtv.load_tinyimagenet(data_root=str(tmp_path))

    assert data.num_classes == 3 and (data.channels, data.image_size) == (3, 64)
    assert data.extra["wnids"] == sorted(TINY_COLORS)
    assert data.class_names == ["goldfish", "Chihuahua", "n09999999"]
    assert data.mean == pytest.approx(dtv.TINYIMAGENET_STATS[0])
    assert len(data.train) + len(data.val) == 30 and data.val.class_counts() == [1, 1, 1]
    assert len(data.test) == 6 and data.test.class_counts() == [2, 2, 2]
    sorted_colors = [TINY_COLORS[w] for w in sorted(TINY_COLORS)]
    for split in (data.train, data.val, data.test):
        assert split.data.dtype == torch.uint8 and tuple(split.data.shape[1:]) == (3, 64, 64)
        mean_rgb = split.data.float().mean(dim=(2, 3))  # N, 3
        for img_rgb, label in zip(mean_rgb, split.labels.tolist()):
            expected = torch.tensor(sorted_colors[label], dtype=torch.float32)
            if label == 1 and float(img_rgb.std()) < 5:  # the grayscale train image: R == G == B
                continue
            assert torch.allclose(img_rgb, expected, atol=6), (img_rgb, expected, label)
    # the test split follows val_annotations: labels in annotation order
    assert data.test.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_tinyimagenet_root_may_be_the_folder_itself(tmp_path):
    write_tinyimagenet(tmp_path, per_class=2, val_per_class=1)
    data = dtv.load_tinyimagenet(data_root=str(tmp_path / "tiny-imagenet-200"))
    assert data.num_classes == 3 and len(data.test) == 3


def test_imagefolder(tmp_path):
    colors = {"cat": (200, 0, 0), "dog": (0, 0, 200)}
    for split, n in (("train", 10), ("test", 3)):
        for cls, color in colors.items():
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = np.zeros((16, 16, 3), dtype=np.uint8)
                arr[:] = color
                arr[1, 14] = (i, 7, 9)  # row 1, col 14
                Image.fromarray(arr).save(d / f"{i}.png")
    (tmp_path / "train" / "notes.txt").write_text("ignored")
    data = dtv.load_imagefolder(data_root=str(tmp_path))
    assert data.class_names == ["cat", "dog"] and (data.channels, data.image_size) == (3, 16)
    assert len(data.train) + len(data.val) == 20 and data.val.class_counts() == [1, 1]
    assert len(data.test) == 6 and data.test.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.test.data[:, :, 1, 14].tolist() == [[i, 7, 9] for i in range(3)] * 2
    assert data.test.data[:, 0, 0, 0].tolist() == [200] * 3 + [0] * 3
    assert torch.isfinite(data.test.images).all()


def test_imagefolder_grayscale_and_bad_sizes(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8), mode="L").save(d / f"{i}.png")
    data = dtv.load_imagefolder(data_root=str(tmp_path))
    assert data.channels == 1 and tuple(data.test.data.shape) == (6, 1, 8, 8)
    Image.new("L", (9, 9)).save(tmp_path / "test" / "a" / "odd.png")
    with pytest.raises(BenchError, match="odd.png is 9x9, expected 8x8"):
        dtv.load_imagefolder(data_root=str(tmp_path))


# ----------------------------------------------------------------------------- missing data, registry, laziness

@pytest.mark.parametrize("name", ["mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "tinyimagenet"])
def test_missing_dataset_is_one_line_error(tmp_path, name):
    loader = {"mnist": dtv.load_mnist, "fashionmnist": dtv.load_fashionmnist, "svhn": dtv.load_svhn,
              "cifar10": dtv.load_cifar10, "cifar100": dtv.load_cifar100,
              "tinyimagenet": dtv.load_tinyimagenet}[name]
    root = tmp_path / "nothing here"
    with pytest.raises(BenchError) as err:
        loader(data_root=str(root))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{name} not found under {root}")
    assert "--download" in msg


def test_missing_imagefolder_is_one_line_error(tmp_path):
    with pytest.raises(BenchError) as err:
        dtv.load_imagefolder(data_root=str(tmp_path))
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)


def test_download_failure_is_one_line_error(tmp_path, monkeypatch):
    import torchvision.datasets.mnist as tv_mnist
    import torchvision.datasets.utils as tv_utils

    def no_network(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", no_network)
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", no_network)
    for loader, name in ((dtv.load_mnist, "mnist"), (dtv.load_tinyimagenet, "tinyimagenet")):
        with pytest.raises(BenchError) as err:
            loader(data_root=str(tmp_path), download=True)
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith(f"{name}: --download into {tmp_path} failed"), msg


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DASM_DATA", str(tmp_path))
    write_mnist(tmp_path)
    assert dtv.resolve_data_root(None) == str(tmp_path)
    assert len(dtv.load_mnist().test) == 10
    monkeypatch.delenv("DASM_DATA")
    assert dtv.resolve_data_root(None) == os.path.expanduser("~/.cache/dasm-bench/data")


def test_registered():
    names = list_datasets()
    for name in ("mnist", "fashionmnist", "svhn", "cifar10", "cifar100", "tinyimagenet", "imagefolder"):
        assert name in names and names[name]


def test_torchvision_is_imported_lazily():
    code = ("import sys, bench.data.datasets, bench.data.torchvision_sets; "
            "sys.exit(1 if 'torchvision' in sys.modules else 0)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
