import json

import pytest
import torch

from bench.errors import BenchError
from bench.report.pictures import synthetic_picture
from bench.store.synthetic import SyntheticSet, decode_multi_formation


def _set(k=6, c=1, h=8, factor=1):
    g = torch.Generator().manual_seed(0)
    return SyntheticSet(torch.randn(k, c, h, h, generator=g), torch.arange(k) % 3, factor,
                        metadata={"method": "x", "dataset": "digits", "ipc": 2})


def test_save_load_roundtrip(tmp_path):
    s = _set()
    s.segment_ids = torch.tensor([0, 0, 0, 1, 1, 1])
    path = s.save(tmp_path / "a.safetensors")
    assert path.exists() and path.with_suffix(".json").exists()
    back = SyntheticSet.load(path)
    assert torch.equal(back.images, s.images) and torch.equal(back.labels, s.labels)
    assert torch.equal(back.segment_ids, s.segment_ids) and back.metadata["ipc"] == 2


def test_soft_labels_roundtrip(tmp_path):
    s = SyntheticSet(torch.randn(4, 1, 8, 8), torch.softmax(torch.randn(4, 3), 1))
    back = SyntheticSet.load(s.save(tmp_path / "soft.safetensors"))
    assert torch.allclose(back.labels, s.labels) and back.hard_labels.tolist() == s.labels.argmax(1).tolist()


def test_corrupt_or_truncated_files_are_rejected(tmp_path):
    path = _set().save(tmp_path / "a.safetensors")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(BenchError, match="corrupt or truncated"):
        SyntheticSet.load(path)
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    with pytest.raises(BenchError, match="corrupt"):
        SyntheticSet.load(path)
    path.write_bytes(blob)
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["shapes"]["images"] = [1, 2, 3, 4]
    side.write_text(json.dumps(meta))
    with pytest.raises(BenchError, match="does not match"):
        SyntheticSet.load(path)
    side.write_text("{not json")
    with pytest.raises(BenchError, match="not valid JSON"):
        SyntheticSet.load(path)
    with pytest.raises(BenchError, match="does not exist"):
        SyntheticSet.load(tmp_path / "missing.safetensors")


def test_validation_of_shapes_and_dtypes():
    with pytest.raises(BenchError):
        SyntheticSet(torch.randn(3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(BenchError):
        SyntheticSet(torch.randn(3, 1, 8, 8), torch.zeros(2, dtype=torch.long))
    with pytest.raises(BenchError):
        SyntheticSet(torch.randn(3, 1, 8, 8), torch.zeros(3, dtype=torch.int32))
    with pytest.raises(BenchError, match="NaN"):
        SyntheticSet(torch.full((1, 1, 8, 8), float("nan")), torch.zeros(1, dtype=torch.long))


def test_multi_formation_decoder_tiles_and_labels():
    img = torch.arange(16.0).view(1, 1, 4, 4)
    dec, lab = decode_multi_formation(img, torch.tensor([7]), 2)
    assert dec.shape == (4, 1, 4, 4) and lab.tolist() == [7, 7, 7, 7]
    # tile (0,0) holds pixels 0,1,4,5: upsampling keeps its mean, and tiles are distinct
    assert torch.isclose(dec[0].mean(), torch.tensor([0.0, 1, 4, 5]).mean())
    assert torch.isclose(dec[3].mean(), torch.tensor([10.0, 11, 14, 15]).mean())
    s = _set(factor=2)
    x, y = s.decode()
    assert x.shape == (24, 1, 8, 8) and torch.equal(y, s.labels.repeat(4))


def test_concat_assigns_segment_ids():
    a, b = _set(3), _set(3)
    joined = SyntheticSet.concat([a, b])
    assert joined.segment_ids.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(BenchError):
        SyntheticSet.concat([a, _set(3, factor=2)])


def test_picture_is_written(tmp_path, digits):
    from PIL import Image

    from bench.methods.registry import DistillRequest, distill

    syn = distill("random", DistillRequest(digits, ipc=3, seed=0))
    [out] = synthetic_picture(syn, tmp_path / "grid.png", digits.mean, digits.std, digits.class_names,
                              formats=("png",))
    assert out == tmp_path / "grid.png" and out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in synthetic_picture(syn, tmp_path / "both", digits.mean, digits.std)) == \
        ["both.pdf", "both.png"]                       # the figure writer's formats by default
    # decoded: IDC's factor 2 turns each stored image into 4, so the rows get 4x as many columns: in
    # the same column width (3.5 in) the tiles get smaller and the picture lower
    packed = SyntheticSet(syn.images, syn.labels, factor=2)
    [narrow] = synthetic_picture(packed, tmp_path / "packed.png", digits.mean, digits.std, formats=("png",))
    [wide] = synthetic_picture(packed, tmp_path / "decoded.png", digits.mean, digits.std, formats=("png",),
                               decoded=True, max_per_class=12)
    (w_wide, h_wide), (w_narrow, h_narrow) = Image.open(wide).size, Image.open(narrow).size
    assert w_wide == w_narrow == 700 and h_wide < h_narrow


def test_picture_in_an_unknown_format_is_a_one_line_error(tmp_path, digits, capsys):
    from bench.cli.main import main
    from bench.methods.registry import DistillRequest, distill

    syn = distill("random", DistillRequest(digits, ipc=1, seed=0))
    with pytest.raises(BenchError, match=r"cannot write a \.xyz figure; use one of .*\.png"):
        synthetic_picture(syn, tmp_path / "grid", digits.mean, digits.std, formats=("png", "xyz"))
    assert not list(tmp_path.iterdir())                   # nothing written, not even the png
    path = syn.save(tmp_path / "set.safetensors")
    assert main(["show", str(path), "--out", str(tmp_path / "set.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write a .xyz figure") and err.count("\n") == 1
