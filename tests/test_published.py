"""Sets published by other code bases (``../shared/data/published``) import into valid set files:
DC/DSA/DM result files through torch's safe globals (numpy float scalars, nothing that runs code),
MTT save directories at any iteration, DD-Ranking's layout, ZCA-whitened sets evaluated against
whitened real images, learned soft labels and lr used as the source uses them; and
``dasm-bench published`` evaluates every one into a measured-vs-reported table.

No test needs CIFAR-10: a fake 10-class 3x32x32 dataset (``fake-cifar``, CIFAR's normalisation)
stands in, registered for the test only; the ZCA tests use 3x8x8 images (``fake-small``), whose
3072-less covariance takes milliseconds to decompose instead of a minute.
"""

from __future__ import annotations

import csv
import hashlib
import os
import pickletools
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from bench.cli.main import main
from bench.data.core import make_dataset
from bench.published.importers import import_set
from bench.store.synthetic import SyntheticSet

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("dc-cifar10-ipc1", "dsa-cifar10-ipc1", "dm-cifar10-ipc1", "mtt-cifar10-ipc1", "mtt-cifar10-ipc10-nozca")
CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]


def _published() -> Path:
    shared = Path(os.environ["DASM_SHARED"]) if os.environ.get("DASM_SHARED") else ROOT.parent / "shared"
    return shared / "data" / "published"


def _fake(name: str, size: int):
    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.rand(300, 3, size, size, generator=g), torch.rand(60, 3, size, size, generator=g)
    train_y, test_y = torch.arange(10).repeat(30), torch.arange(10).repeat(6)
    return make_dataset(name, train_x, train_y, test_x, test_y, [f"c{i}" for i in range(10)], CIFAR_MEAN, CIFAR_STD)


def _register(monkeypatch, name: str, size: int):
    """``--dataset <name>`` works for this test only (registry entry and load cache undone after)."""
    import bench.data.datasets
    from bench.data import core as dataset_core

    bench.data.datasets._import_builtin_loaders()
    data = _fake(name, size)
    monkeypatch.setitem(dataset_core._DATASETS, name, lambda data_root=None, download=False: data)
    monkeypatch.setattr(bench.data.datasets, "_CACHE", {})
    return bench.data.datasets.load_dataset(name)


@pytest.fixture
def fake_cifar(monkeypatch):
    return _register(monkeypatch, "fake-cifar", 32)


@pytest.fixture
def fake_small(monkeypatch):
    return _register(monkeypatch, "fake-small", 8)


@pytest.fixture
def published() -> Path:
    root = _published()
    if not root.is_dir():
        pytest.skip(f"no published sets at {root} (set DASM_SHARED to the shared folder)")
    return root


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(argv))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err, err
    return err


# ----------------------------------------------------------------------------- every published folder

@pytest.mark.parametrize("name", FOLDERS)
def test_every_published_folder_imports(name, published, fake_cifar, tmp_path, capsys):
    folder = published / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is missing")
    out = tmp_path / f"{name}.safetensors"
    assert main(["import", str(folder), "--dataset", "fake-cifar", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    syn = SyntheticSet.load(out)
    meta, prov = syn.metadata, syn.metadata["import"]
    ipc = 10 if "ipc10" in name else 1
    assert syn.images.shape == (10 * ipc, 3, 32, 32) and meta["ipc"] == ipc and meta["dataset"] == "fake-cifar"
    assert torch.equal(syn.labels, torch.arange(10).repeat_interleave(ipc))
    assert "zca" not in meta and printed.strip().splitlines()[-1].startswith("ZCA: no (")
    if name.startswith("mtt"):
        tag = "best" if name == "mtt-cifar10-ipc1" else "5000"
        images = folder / f"images_{tag}.pt"
        assert prov["format"] == "mtt" and set(prov["inputs"]) == {str(images), str(folder / f"labels_{tag}.pt")}
        assert torch.equal(syn.images, torch.load(images, weights_only=True))
        assert ("'mtt-cifar10-ipc10-nozca'" in prov["zca"]) == (name == "mtt-cifar10-ipc10-nozca")
    else:
        [result] = folder.glob("res_*.pt")
        assert prov["format"] == "dc" and prov["inputs"] == {str(result): _sha(result)}
        accs = prov["reported_accuracies"]["ConvNet"]
        assert len(accs) == (5 if name.startswith("dm") else 100) and all(0 < a < 1 for a in accs)


def test_result_file_globals_are_exactly_what_the_files_name(published):
    """The allow-list is derived from the files' GLOBAL opcodes, and each entry is needed."""
    from bench.published.formats import result_file_globals
    from bench.published.importers import load_plain

    files = [f for n in FOLDERS if n[:2] in ("dc", "ds", "dm") for f in (published / n).glob("res_*.pt")]
    if not files:
        pytest.skip("no DC/DSA/DM result file")
    named = set()
    for f in files:
        with zipfile.ZipFile(f) as z:
            pkl = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        named |= {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(pkl) if op.name == "GLOBAL"}
    beyond_torch = {g for g in named if not g.startswith("torch.") and g not in ("collections.OrderedDict",
                                                                                  "_codecs.encode")}
    allowed = result_file_globals()
    as_named = {e[1] if isinstance(e, tuple) else f"{e.__module__}.{e.__qualname__}" for e in allowed}
    assert beyond_torch == {"numpy.core.multiarray.scalar", "numpy.dtype"} <= as_named
    # the rest (numpy's Float64DType) is the class BUILD sets the 'f8' dtype's state on: not a GLOBAL
    assert len(as_named - beyond_torch) <= 1
    for dropped in range(len(allowed)):  # every entry is needed: without it, the file is refused
        fewer = allowed[:dropped] + allowed[dropped + 1:]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr("bench.published.formats.result_file_globals", lambda: fewer)
            with pytest.raises(Exception, match="needs pickle beyond tensors"):
                load_plain(files[0])


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_still_refused(tmp_path, fake_cifar, capsys):
    marker = tmp_path / "ran"
    src = tmp_path / "res_DC_evil.pt"
    torch.save({"data": [[torch.zeros(10, 3, 32, 32), torch.arange(10)]], "x": _RunsCode(marker)}, src)
    err = _one_line_error(capsys, ["import", str(src), "--dataset", "fake-cifar", "--out", str(tmp_path / "x")])
    assert "needs pickle beyond tensors" in err and "system" in err
    assert not marker.exists() and not (tmp_path / "x.safetensors").exists()


# ----------------------------------------------------------------------------- MTT saves, DD-Ranking

def _save_dir(folder: Path, tags: list[str], ipc: int = 1, lr: float | None = None, size: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, tag in enumerate(tags):
        torch.save(torch.full((10 * ipc, 3, size, size), float(i)), folder / f"images_{tag}.pt")
        torch.save(torch.arange(10).repeat_interleave(ipc), folder / f"labels_{tag}.pt")
        if lr is not None:
            torch.save(torch.tensor(lr), folder / f"lr_{tag}.pt")


def test_mtt_saves_are_chosen_deterministically(tmp_path, fake_cifar, capsys):
    run = tmp_path / "run"
    _save_dir(run, ["1000", "5000"])
    out = str(tmp_path / "x")
    err = _one_line_error(capsys, ["import", str(run), "--dataset", "fake-cifar", "--out", out])
    assert "images_1000.pt, images_5000.pt" in err and "--iteration 1000|5000" in err
    assert main(["import", str(run), "--dataset", "fake-cifar", "--out", out, "--iteration", "5000"]) == 0
    assert float(SyntheticSet.load(out + ".safetensors").images[0, 0, 0, 0]) == 1.0   # the 5000 save
    assert main(["import", str(run / "images_1000.pt"), "--dataset", "fake-cifar", "--out", out]) == 0
    assert float(SyntheticSet.load(out + ".safetensors").images[0, 0, 0, 0]) == 0.0   # a named file picks itself
    _save_dir(run, ["1000", "5000", "best"])                                          # best: values 2
    assert main(["import", str(run), "--dataset", "fake-cifar", "--out", out]) == 0
    assert float(SyntheticSet.load(out + ".safetensors").images[0, 0, 0, 0]) == 2.0
    err = _one_line_error(capsys, ["import", str(run), "--dataset", "fake-cifar", "--out", out, "--iteration", "7"])
    assert "saved iterations: 1000, 5000, best" in err


def test_ddranking_layout_with_soft_labels_and_learned_lr(tmp_path, fake_cifar, capsys):
    src = tmp_path / "datm-export"
    src.mkdir()
    images = torch.randn(20, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    logits = torch.randn(20, 10, generator=torch.Generator().manual_seed(2)) * 3
    torch.save(images, src / "images.pt")
    torch.save(logits, src / "labels.pt")
    torch.save(torch.tensor(0.0314), src / "lr.pt")
    out = tmp_path / "dd.safetensors"
    assert main(["import", str(src), "--dataset", "fake-cifar", "--out", str(out)]) == 0
    syn = SyntheticSet.load(out)
    assert syn.metadata["import"]["format"] == "ddranking" and torch.equal(syn.images, images)
    # DATM distill/evaluation.py SoftCrossEntropy: the targets are softmax(stored labels)
    assert torch.allclose(syn.labels, torch.softmax(logits, 1), atol=1e-6)
    assert syn.metadata["syn_lr"] == pytest.approx(0.0314) and syn.metadata["eval_protocol"] == "mtt"
    (src / "labels.pt").unlink()
    err = _one_line_error(capsys, ["import", str(src), "--dataset", "fake-cifar", "--out", str(tmp_path / "y"),
                                   "--format", "ddranking"])
    assert "has no labels.pt" in err


def test_soft_labels_and_learned_lr_reach_training_with_overrides(tmp_path, fake_cifar, monkeypatch, capsys):
    import bench.train.evaluation as ev

    seen = {}

    def record(images, labels, data, arch, protocol, *args, **kwargs):
        seen.update(labels=labels.clone(), lr=protocol.lr, name=protocol.name)
        return ev.EvalResult(arch, protocol.name, [50.0])

    monkeypatch.setattr(ev, "evaluate_training_set", record)
    probs = torch.softmax(torch.randn(10, 10, generator=torch.Generator().manual_seed(3)), 1)
    syn = SyntheticSet(torch.zeros(10, 3, 32, 32), probs, metadata={"dataset": "fake-cifar", "method": "m",
                                                                     "eval_protocol": "mtt", "syn_lr": 0.02})
    path = syn.save(tmp_path / "soft.safetensors")
    base = ["evaluate", str(path), "--epochs", "1", "--models", "1", "--no-progress"]
    assert main(base) == 0
    assert seen["lr"] == pytest.approx(0.02) and torch.equal(seen["labels"], probs) and seen["name"] == "mtt@1ep"
    assert main([*base, "--lr", "0.005", "--hard-labels"]) == 0   # --lr wins over the learned lr
    assert seen["lr"] == pytest.approx(0.005) and seen["name"] == "mtt@1ep@lr0.005@hard"
    assert torch.equal(seen["labels"], probs.argmax(1))


# ----------------------------------------------------------------------------- ZCA

def test_zca_choice_flag_and_detection(tmp_path, fake_cifar, capsys):
    from bench.data.zca import zca_record

    for name, expected in (("ZCA", True), ("NO_ZCA", False), ("run-nozca", False), ("plain", False)):
        _save_dir(tmp_path / name, ["best"])
        out = tmp_path / f"{name}.safetensors"
        assert main(["import", str(tmp_path / name), "--dataset", "fake-cifar", "--out", str(out)]) == 0
        assert ("zca" in SyntheticSet.load(out).metadata) == expected, name
        assert capsys.readouterr().out.strip().splitlines()[-1].startswith(f"ZCA: {'yes' if expected else 'no'} (")
    copy = tmp_path / "pixels-copy"
    _save_dir(copy, ["5000"])
    torch.save(torch.rand(10, 3, 32, 32), copy / "images_zca_5000.pt")   # MTT writes it only under --zca
    assert main(["import", str(copy), "--dataset", "fake-cifar", "--out", str(tmp_path / "c")]) == 0
    syn = SyntheticSet.load(tmp_path / "c.safetensors")
    assert syn.metadata["zca"] == zca_record() and "images_zca_5000.pt" in syn.metadata["import"]["zca"]
    assert main(["import", str(copy), "--dataset", "fake-cifar", "--out", str(tmp_path / "d"), "--no-zca"]) == 0
    assert "zca" not in SyntheticSet.load(tmp_path / "d.safetensors").metadata
    assert SyntheticSet.load(tmp_path / "d.safetensors").metadata["config_hash"] != syn.metadata["config_hash"]


def test_a_zca_set_is_tested_on_kornia_whitened_real_images(fake_small):
    kornia = pytest.importorskip("kornia")
    from bench.data.zca import evaluation_space, zca_record

    images = torch.randn(10, 3, 8, 8)
    train_images, target = evaluation_space({"zca": zca_record()}, fake_small, images, "test")
    assert train_images is images  # stored whitened: trained on as they are
    # MTT/DATM utils.py: ToTensor() alone, ZCAWhitening(eps=0.1) fitted on every training image
    ref = kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)
    ref.fit(fake_small.train.data.double())
    expected = ref(fake_small.test.data.double()).float()
    assert torch.allclose(target.images, expected, atol=2e-4)
    assert not torch.allclose(target.images, fake_small.test.images, atol=0.1)   # not the normalised split
    assert torch.equal(target.labels, fake_small.test.labels)
    assert evaluation_space({}, fake_small, images, "test") == (images, None)


def test_a_zca_set_is_never_tested_on_unwhitened_images(tmp_path, fake_cifar, capsys):
    syn = SyntheticSet(torch.randn(10, 3, 32, 32), torch.arange(10),
                       metadata={"dataset": "fake-cifar", "zca": {"space": "whitened", "eps": 0.1, "fit": "?"}})
    path = syn.save(tmp_path / "odd.safetensors")
    err = _one_line_error(capsys, ["evaluate", str(path), "--epochs", "1", "--models", "1", "--no-progress"])
    assert "refusing to test it against unwhitened images" in err


def test_a_zca_set_evaluates_end_to_end_in_whitened_space(tmp_path, fake_small, capsys):
    src = tmp_path / "ZCA"
    _save_dir(src, ["best"], lr=0.01, size=8)
    out = tmp_path / "z.safetensors"
    assert main(["import", str(src), "--dataset", "fake-small", "--out", str(out)]) == 0
    assert main(["evaluate", str(out), "--epochs", "1", "--models", "1", "--no-progress"]) == 0
    assert "(mtt@1ep): last" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the published table

@pytest.mark.parametrize("name, dataset, protocol", [
    ("res_DC_CIFAR10_ConvNet_1ipc.pt", "cifar10", "dc-nodsa"),      # 300 epochs, no augmentation
    ("res_DC_CIFAR10_ConvNet_1ipc.pt", "cifar10-jpeg", "dc-nodsa"),  # a copy takes its original's
    ("res_DC_MNIST_ConvNet_10ipc.pt", "mnist", "dc-aug"),           # get_daparam's crop/scale/rotate
    ("res_DSA_CIFAR10_ConvNet_1ipc.pt", "cifar10", "dc"),           # DSA on: 1000 epochs
    ("res_DM_CIFAR10_ConvNet_1ipc.pt", "cifar10", "dc"),
    ("res_other.pt", "cifar10", "dc"),
])
def test_a_dc_result_file_is_evaluated_under_its_methods_protocol(name, dataset, protocol):
    from bench.published.formats import dc_source_protocol

    assert dc_source_protocol(Path(name), dataset) == protocol


def test_an_imported_dc_file_records_its_protocol(tmp_path, digits):
    src = tmp_path / "res_DC_digits_ConvNet_1ipc.pt"
    torch.save({"data": [[torch.zeros(10, 1, 8, 8), torch.arange(10)]], "accs_all_exps": {}}, src)
    assert import_set(src, digits).metadata["eval_protocol"] == "dc-nodsa"
    dsa = tmp_path / "res_DSA_digits_ConvNet_1ipc.pt"
    shutil.copy(src, dsa)
    assert import_set(dsa, digits).metadata["eval_protocol"] == "dc"


def test_published_command_evaluates_every_set_at_a_tiny_budget(published, fake_cifar, tmp_path, capsys):
    root = tmp_path / "published"
    shutil.copytree(published, root)   # untouched copies: the run must not write beside them
    out = tmp_path / "out"
    assert main(["published", str(root), "--dataset", "fake-cifar", "--out", str(out), "--epochs", "1",
                 "--models", "1", "--no-progress"]) == 0
    with open(out / "published.csv", newline="") as f:
        rows = {r["folder"]: r for r in csv.DictReader(f)}
    present = [n for n in FOLDERS if (published / n).is_dir()]
    assert sorted(rows) == sorted(present)
    for name, row in rows.items():
        # each under its source's protocol: DC's own numbers were measured without DSA (main.py:117-123)
        expected = "mtt@1ep" if name.startswith("mtt") else "dc-nodsa@1ep" if name.startswith("dc-") else "dc@1ep"
        assert row["protocol"] == expected, name
        assert 0 <= float(row["measured_mean"]) <= 100 and row["models"] == "1"
        assert SyntheticSet.load(out / "sets" / f"{name}.safetensors").metadata["method"] == f"published-{name}"
    if "dc-cifar10-ipc1" in rows:   # the README's number and the file's own, recomputed as main.py prints it
        assert "28.3" in rows["dc-cifar10-ipc1"]["reported"]
        assert rows["dc-cifar10-ipc1"]["file_reported"] == "ConvNet 28.03 ± 0.60 (n=100)"
    if "dm-cifar10-ipc1" in rows:
        assert rows["dm-cifar10-ipc1"]["file_reported"] == "ConvNet 26.32 ± 0.31 (n=5)"
    assert "| measured (last epoch) |" in (out / "published.md").read_text()
    assert sorted(p.name for p in root.rglob("*")) == sorted(p.name for p in published.rglob("*"))
    # the table's layout is re-rendered from its CSV by `dasm-bench plot` (no re-evaluation), also for a
    # CSV written before the code_version column: the version then comes from the imported sets
    md_before = (out / "published.md").read_text()
    with open(out / "published.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert all(r["code_version"] for r in raw)
    with open(out / "published.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in raw[0] if k != "code_version"], lineterminator="\n")
        w.writeheader()
        w.writerows([{k: v for k, v in r.items() if k != "code_version"} for r in raw])
    (out / "published.md").write_text("stale")
    assert main(["plot", str(out)]) == 0
    assert (out / "published.md").read_text() == md_before


def test_reported_number_and_the_within_spread_column():
    from bench.published.evaluate import PublishedRow, reported_number, table_markdown

    assert reported_number("DC paper 28.3 +- 0.5; the file's own `accs_all_exps` 28.03 +- 0.60") == (28.3, 0.5)
    assert reported_number("MTT paper 46.3 ± 0.8") == (46.3, 0.8)
    assert reported_number("none published for this file (MTT paper, with ZCA: 65.3 +- 0.7)") is None
    assert reported_number("") is None

    def row(mean, std, reported):
        return PublishedRow("s", "dc", 10, 1, "hard", False, "dc", 0.01, "convnet", 5, mean, std, reported, "", "v1")

    lines = table_markdown([row(28.99, 0.33, "DC paper 28.3 +- 0.5"), row(28.6, 0.33, "DC paper 28.3 +- 0.5"),
                            row(60.0, 1.0, "none published (with ZCA 65.3 +- 0.7)")], "fake").splitlines()
    body = [line for line in lines if line.startswith("| s |")]
    assert body[0].endswith("| +0.69 | no |")        # 0.69 > hypot(0.33, 0.5) = 0.60
    assert body[1].endswith("| +0.30 | yes |")
    assert body[2].endswith("| - | - |")
    assert "Code version: v1." in lines[-1]
