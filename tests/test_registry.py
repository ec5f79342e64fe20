from dataclasses import dataclass

import pytest
import torch

from bench.errors import BenchError
from bench.methods.registry import DistillRequest, apply_overrides, config_hash, distill, get_method, list_methods


def test_random_selection_uses_real_images_from_the_pool(digits):
    syn = distill("random", DistillRequest(digits, ipc=3, seed=4))
    idx = torch.tensor(syn.metadata["selected_indices"])
    assert torch.equal(syn.images, digits.train.get(idx))
    assert syn.labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert syn.metadata["method"] == "random" and syn.metadata["ipc"] == 3 and len(syn.metadata["config_hash"]) == 16
    pool = [ix[:4] for ix in digits.train.indices_by_class]
    syn = distill("random", DistillRequest(digits, ipc=2, seed=0, pool=pool))
    allowed = set(torch.cat(pool).tolist())
    assert set(syn.metadata["selected_indices"]) <= allowed


def test_same_seed_same_set_other_seed_differs(digits):
    a = distill("random", DistillRequest(digits, ipc=2, seed=1))
    b = distill("random", DistillRequest(digits, ipc=2, seed=1))
    c = distill("random", DistillRequest(digits, ipc=2, seed=2))
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)


def test_unknown_method_and_bad_pool(digits):
    with pytest.raises(BenchError, match="did you mean random"):
        get_method("randomm")
    bad = [ix[:2] for ix in digits.train.indices_by_class]
    bad[1] = digits.train.indices_by_class[2][:2]
    with pytest.raises(BenchError, match="other classes"):
        distill("random", DistillRequest(digits, ipc=1, pool=bad))
    with pytest.raises(BenchError, match="smallest class"):
        distill("random", DistillRequest(digits, ipc=10_000))
    assert "random" in list_methods()


@dataclass
class _Cfg:
    lr: float = 0.1
    iters: int = 10
    init: str = "real"
    flag: bool = False
    windows: tuple[float, ...] = (0.0, 1.0)


def test_overrides_are_typed_and_checked():
    cfg = apply_overrides(_Cfg(), {"lr": "0.5", "iters": "3", "flag": "true", "windows": "0.2,0.8"})
    assert cfg == _Cfg(lr=0.5, iters=3, flag=True, windows=(0.2, 0.8))
    with pytest.raises(BenchError, match="did you mean lr"):
        apply_overrides(_Cfg(), {"lrr": 1})
    with pytest.raises(BenchError, match="expects int"):
        apply_overrides(_Cfg(), {"iters": "many"})
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1}) != config_hash({"a": 2, "b": 2})


def test_sets_record_the_protocol_they_are_evaluated_with(digits):
    syn = distill("random", DistillRequest(digits, ipc=1, seed=0))
    assert syn.metadata["eval_protocol"] == "dc"
    syn = distill("dasm", DistillRequest(digits, ipc=1, seed=0, progress=False), overrides={"base": "random"})
    assert syn.metadata["eval_protocol"] == "dc"   # follows its base, not DASM's default base (idc)
    from bench.methods.registry import default_config
    assert default_config("dasm", "digits", 1).eval_protocol == "idc"
