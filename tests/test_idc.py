"""Tests for IDC: multi-formation decoding and init, the DASM interface, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines.idc import IDCConfig, default_factor, multi_formation_init
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, default_config, distill
from bench.store.synthetic import SyntheticSet, decode_multi_formation
from bench.train.evaluation import evaluate_synthetic

# tiny budget: 1 iteration of 2 class rounds, small batches, a short network update
TINY = {"iterations": 1, "inner_loop": 2, "batch_real": 8, "n_data": 32, "factor": 2}


def run(data, ipc: int = 1, seed: int = 0, overrides: dict | None = None, **kwargs) -> SyntheticSet:
    return distill("idc", DistillRequest(data, ipc=ipc, seed=seed, progress=False, **kwargs),
                   overrides={**TINY, **(overrides or {})})


_CACHE: dict[int, SyntheticSet] = {}


def cached(data, seed: int = 0) -> SyntheticSet:
    if seed not in _CACHE:
        _CACHE[seed] = run(data, seed=seed)
    return _CACHE[seed]


# ----------------------------------------------------------------------------- multi-formation

def test_decoder_gives_factor_squared_full_size_images_with_labels():
    stored = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    x, y = decode_multi_formation(stored, torch.tensor([3, 7]), 2)
    assert x.shape == (8, 1, 8, 8)
    assert y.tolist() == [3, 7] * 4  # tile-major: every image's tile (0,0), then (0,1), ...
    # tile (0, 1) of image 1 upsampled back to 8x8
    expected = F.interpolate(stored[1:2, :, :4, 4:], size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[3:4], expected)


@pytest.mark.parametrize("factor, size", [(2, 8), (2, 28), (3, 9)])
def test_mix_init_round_trips_through_the_decoder(factor, size):
    n = 3
    real = torch.randn(factor * factor * n, 1, size, size, generator=torch.Generator().manual_seed(0))
    stored = multi_formation_init(real, factor)
    assert stored.shape == (n, 1, size, size)
    decoded, _ = decode_multi_formation(stored, torch.zeros(n, dtype=torch.long), factor)
    tile = math.ceil(size / factor)
    expected = F.interpolate(F.interpolate(real, size=(tile, tile), mode="nearest"), size=(size, size),
                             mode="bilinear", align_corners=False)
    torch.testing.assert_close(decoded, expected)  # decoded image k*n+m is real image k*n+m, zoomed


def test_factor_rule_and_configs():
    assert default_factor(8) == 1 and default_factor(28) == 2 and default_factor(32) == 2
    c10 = default_config("idc", "cifar10", 10)
    assert (c10.iterations, c10.inner_loop, c10.metric, c10.lr_img, c10.batch_real, c10.n_data, c10.init,
            c10.momentum_img, c10.aug_type, c10.mixup_net, c10.match_bias, c10.match_fc) == (
        2000, 100, "mse", 5e-3, 64, 2000, "mix", 0.5, "color_crop_cutout", "cut", False, False)
    mnist = default_config("idc", "mnist", 10)
    assert (mnist.metric, mnist.lr_img, mnist.n_data, mnist.aug_type) == ("l1", 1e-4, 500, "color_crop")
    assert default_config("idc", "digits", 10).iterations < 100 and IDCConfig.eval_protocol == "idc"
    with pytest.raises(BenchError, match="mixup_net"):
        IDCConfig(mixup_net="mixup").validate()
    with pytest.raises(BenchError, match="factor"):
        IDCConfig(factor=0).validate()


# ----------------------------------------------------------------------------- runs

def test_run_with_factor_2_on_digits(digits, tiny_protocol):
    init = run(digits, overrides={"iterations": 0})
    syn = cached(digits)
    assert syn.factor == 2 and syn.images.shape == (10, 1, 8, 8) and syn.labels.tolist() == list(range(10))
    x, y = syn.decode()
    assert x.shape == (40, 1, 8, 8) and y.tolist() == list(range(10)) * 4
    assert not torch.allclose(syn.images, init.images)
    assert syn.metadata["lr_img_effective"] == pytest.approx(default_config("idc", "digits", 1).lr_img / 10)
    assert all(math.isfinite(v) for v in syn.metadata["matching_loss"])
    res = evaluate_synthetic(syn, digits, protocol=tiny_protocol, num_models=1)
    assert 0.0 <= res.last_mean <= 100.0


def test_same_seed_same_images(digits):
    assert torch.equal(cached(digits).images, run(digits).images)


def test_restricted_pool_init_equals_the_pool_image(digits):
    pool = [ix[7:8] for ix in digits.train.indices_by_class]
    real = digits.train.get(torch.cat(pool))
    plain = run(digits, pool=pool, overrides={"iterations": 0, "init": "real", "factor": 1})
    torch.testing.assert_close(plain.images, real, rtol=0, atol=1e-6)  # via pixel space and back
    mixed = run(digits, pool=pool, overrides={"iterations": 0, "init": "mix", "factor": 2})
    # a one-image pool fills all four tiles with that image
    torch.testing.assert_close(mixed.images, multi_formation_init(real.repeat(4, 1, 1, 1), 2),
                               rtol=0, atol=1e-6)


def test_restricted_pool_only_pool_images_are_read(digits, monkeypatch):
    pool = [ix[:4] for ix in digits.train.indices_by_class]
    allowed = set(torch.cat(pool).tolist())
    seen: list[int] = []
    original = digits.train.get

    def spy(indices):
        seen.extend(torch.as_tensor(indices).flatten().tolist())
        return original(indices)

    monkeypatch.setattr(digits.train, "get", spy)
    run(digits, pool=pool)
    assert seen and set(seen) <= allowed


def test_frozen_prefix_is_bit_identical_and_takes_part(digits):
    frozen = run(digits, seed=3, overrides={"iterations": 0})
    before = frozen.images.clone(), frozen.labels.clone()
    new = run(digits, frozen=frozen, segment=1)
    assert torch.equal(frozen.images, before[0]) and torch.equal(frozen.labels, before[1])
    assert len(new) == 10 and new.metadata["frozen_images"] == 40  # decoded: 10 x 2^2
    assert not torch.equal(new.images, cached(digits).images)
    with pytest.raises(BenchError, match="factor"):
        run(digits, frozen=frozen, overrides={"factor": 1})
