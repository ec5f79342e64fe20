"""`dasm-bench show --curves`: the loss and validation curves stored in a set's metadata as a figure."""

from __future__ import annotations

import pytest
import torch

from bench.cli.main import main
from bench.data.datasets import load_dataset
from bench.methods.registry import DistillRequest, distill
from bench.report.curves import stored_curves
from bench.store.synthetic import SyntheticSet


def _set(metadata: dict) -> SyntheticSet:
    return SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), metadata=metadata)


def test_dasm_segments_are_drawn_end_to_end_with_validation():
    meta = {"method": "dasm", "dasm": {"base": "dc", "segments": [
        {"segment": 1, "val_accuracy": 80.0, "base_metadata": {"matching_loss": [3.0, 2.0, 1.5]}},
        {"segment": 2, "val_accuracy": 85.5, "base_metadata": {"matching_loss": [2.5, 1.0]}},
    ]}}
    curves = stored_curves(meta)
    assert curves.loss_segments == [("segment 1 (dc)", [3.0, 2.0, 1.5]), ("segment 2 (dc)", [2.5, 1.0])]
    assert curves.validation == [(1, 80.0), (2, 85.5)]
    assert not stored_curves({"method": "random", "selected_indices": [1, 2]})


def test_show_curves_of_a_real_dc_run(tmp_path, capsys):
    request = DistillRequest(load_dataset("digits"), ipc=1, seed=0, progress=False)
    syn = distill("dc", request, overrides={"iterations": 3, "outer_loop": 2, "inner_loop": 1, "batch_real": 8})
    path = syn.save(tmp_path / "dc.safetensors")
    loss = SyntheticSet.load(path).metadata["matching_loss"]
    assert len(loss) == 3 and stored_curves(SyntheticSet.load(path).metadata).loss_segments == [("dc", loss)]
    assert main(["show", str(path), "--curves"]) == 0
    assert "dc.curves.png" in capsys.readouterr().out
    png = tmp_path / "dc.curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "dc.curves.pdf").exists()


def test_a_set_without_curves_is_one_line_error(tmp_path, capsys):
    path = _set({"method": "random", "dataset": "digits"}).save(tmp_path / "r.safetensors")
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["show", str(path), "--curves"]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "stores no curves" in err and "\n" not in err
    assert not (tmp_path / "r.curves.png").exists()
