"""`dasm-bench import`: sets published by MTT/DATM/TESLA, DC/DSA/DM and image folders round-trip into
our format with provenance, soft labels stay soft, pickle beyond tensors is refused, and an imported
set evaluates from the CLI."""

from __future__ import annotations

import argparse
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli.main import main
from bench.store.synthetic import SyntheticSet

K, C = 20, 10  # 2 images per class of digits


def _images(seed: int = 0) -> torch.Tensor:
    return torch.randn(K, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def _hard() -> torch.Tensor:
    return torch.arange(C).repeat_interleave(K // C)


def _import(argv: list[str]) -> int:
    return main(["import", *argv, "--dataset", "digits"])


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mtt_directory_with_learned_lr(tmp_path, capsys):
    src = tmp_path / "mtt"
    src.mkdir()
    images = _images()
    torch.save(images, src / "images_best.pt")
    torch.save(_hard(), src / "labels_best.pt")
    torch.save(0.0123, src / "lr_best.pt")          # MTT saves syn_lr.item(), a Python float
    out = tmp_path / "mtt.safetensors"
    assert _import([str(src), "--out", str(out), "--method", "mtt-published"]) == 0
    assert "imported 20 images (mtt, hard labels, IPC 2)" in capsys.readouterr().out
    syn = SyntheticSet.load(out)
    assert torch.equal(syn.images, images) and torch.equal(syn.labels, _hard())
    meta = syn.metadata
    assert meta["method"] == "mtt-published" and meta["dataset"] == "digits" and meta["ipc"] == 2
    assert meta["syn_lr"] == pytest.approx(0.0123) and meta["eval_protocol"] == "mtt"
    prov = meta["import"]
    assert prov["format"] == "mtt" and prov["labels"] == "hard" and prov["date"].startswith("20")
    assert prov["inputs"] == {str(src / f"{n}_best.pt"): _sha(src / f"{n}_best.pt") for n in ("images", "labels", "lr")}


def test_datm_soft_labels_stay_soft(tmp_path):
    src = tmp_path / "datm"
    src.mkdir()
    logits = torch.randn(K, C, generator=torch.Generator().manual_seed(1)) * 3
    torch.save(_images(), src / "images_best.pt")
    torch.save(logits, src / "labels_best.pt")
    out = tmp_path / "datm.safetensors"
    assert _import([str(src / "images_best.pt"), "--out", str(out)]) == 0
    syn = SyntheticSet.load(out)
    assert syn.labels.shape == (K, C) and syn.labels.dtype == torch.float32
    assert torch.allclose(syn.labels, torch.softmax(logits, 1), atol=1e-6)   # logits -> probabilities, still soft
    assert syn.metadata["import"]["labels"] == "soft (softmax of stored logits)"
    assert syn.metadata["eval_protocol"] == "dc" and "syn_lr" not in syn.metadata

    probs = torch.softmax(logits, 1)
    torch.save(probs, src / "labels_best.pt")
    assert _import([str(src), "--out", str(tmp_path / "p.safetensors")]) == 0
    kept = SyntheticSet.load(tmp_path / "p.safetensors")
    assert torch.allclose(kept.labels, probs, atol=1e-6) and kept.metadata["import"]["labels"] == "soft (probabilities)"


def test_dc_result_file_picks_the_experiment(tmp_path):
    first, second = _images(1), _images(2)
    src = tmp_path / "res_DC_digits_ConvNet_2ipc.pt"
    torch.save({"data": [[first, _hard()], [second, _hard()]], "accs_all_exps": {"ConvNet": [0.91, 0.93]}}, src)
    out = tmp_path / "dc.safetensors"
    assert _import([str(src), "--out", str(out), "--index", "1"]) == 0
    syn = SyntheticSet.load(out)
    assert torch.equal(syn.images, second) and syn.metadata["method"] == "imported-dc"
    prov = syn.metadata["import"]
    assert prov["experiment_index"] == 1 and prov["experiments_stored"] == 2
    assert prov["reported_accuracies"] == {"ConvNet": [0.91, 0.93]} and prov["inputs"] == {str(src): _sha(src)}


def test_image_folder_gets_the_dataset_normalisation(tmp_path, digits):
    from PIL import Image

    src = tmp_path / "folder"
    real = []
    for c in range(C):
        (src / str(c)).mkdir(parents=True)
        idx = digits.train.indices_by_class[c][:2]
        for j, i in enumerate(idx.tolist()):
            pixels = digits.denormalise(digits.train.images[i:i + 1])[0, 0]
            array = np.round(pixels.numpy() * 255).astype(np.uint8)
            Image.fromarray(array, mode="L").save(src / str(c) / f"{j}.png")
            real.append(digits.train.images[i])
    (src / "3" / "notes.txt").write_text("ignored")
    out = tmp_path / "folder.safetensors"
    assert _import([str(src), "--out", str(out)]) == 0
    syn = SyntheticSet.load(out)
    assert torch.equal(syn.labels, _hard()) and syn.metadata["import"]["format"] == "folder"
    # PNG is 8-bit: back within half a grey level of the real normalised images
    assert torch.allclose(syn.images, torch.stack(real), atol=0.51 / 255 / digits.std[0])


def test_imported_set_evaluates_from_the_cli(tmp_path, capsys):
    src = tmp_path / "mtt"
    src.mkdir()
    torch.save(_images(), src / "images_best.pt")
    torch.save(_hard(), src / "labels_best.pt")
    torch.save(torch.tensor(0.01), src / "lr_best.pt")
    out = tmp_path / "set.safetensors"
    assert _import([str(src), "--out", str(out), "--method", "mtt-published"]) == 0
    res = tmp_path / "res"
    assert main(["evaluate", str(out), "--epochs", "2", "--models", "1", "--arch", "convnet",
                 "--results", str(res), "--no-progress"]) == 0
    assert "mtt-published digits IPC 2 on convnet (mtt@2ep)" in capsys.readouterr().out
    row = pd.read_parquet(res / "results.parquet").iloc[0]
    assert row["method"] == "mtt-published" and row["protocol"] == "mtt@2ep" and 0 <= row["acc_last"] <= 100


class _Payload:  # not a tensor: unpickling it would need this class
    pass


@pytest.mark.parametrize("make, needle", [
    (lambda p: torch.save({"data": [[_Payload(), _hard()]]}, p), "needs pickle beyond tensors"),
    (lambda p: torch.save(argparse.Namespace(x=1), p), "needs pickle beyond tensors"),
    (lambda p: p.write_bytes(b"not a torch file"), "cannot be read as a torch file"),
    (lambda p: torch.save({"images": _images()}, p), "'data' entry"),
    (lambda p: torch.save({"data": [[_images(), _hard()[:5]]]}, p), "5 labels for 20 images"),
    (lambda p: torch.save({"data": [[torch.randn(K, 3, 8, 8), _hard()]]}, p), "3x8x8 images but digits"),
])
def test_bad_files_are_refused_in_one_line(tmp_path, capsys, make, needle):
    src = tmp_path / "res.pt"
    make(src)
    with pytest.raises(SystemExit) as info:
        raise SystemExit(_import([str(src), "--out", str(tmp_path / "x.safetensors")]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err, err
    assert not (tmp_path / "x.safetensors").exists()
