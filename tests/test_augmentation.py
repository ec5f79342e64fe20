"""Tests for bench.train.augmentation: DSA ops, Siamese sampling, seeding, gradients, CutMix."""

from __future__ import annotations

import pytest
import torch

from bench.errors import BenchError
from bench.train.augmentation import DEFAULT_STRATEGY, DSA, DSAParams, DSATransform, cutmix, strategy_for

OPS = ["color", "crop", "cutout", "flip", "scale", "rotate"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 6, c: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=gen(seed))


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> None:
    # plain allclose: torch.testing.assert_close costs ~2 s of lazy imports on first use
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.allclose(a, b, rtol=0, atol=atol), f"max |diff| {(a - b).abs().max().item()}"


def fixed(op: str, u: list[float], params: DSAParams = DSAParams()) -> DSATransform:
    """A Siamese transform with hand-picked uniforms, for hand computations."""
    return DSATransform(((op, torch.tensor([u])),), params, None)


# ----------------------------------------------------------------------------- Siamese

@pytest.mark.parametrize("op", OPS)
def test_siamese_same_transform_for_any_batch_size(op):
    x = images()
    for seed in range(4):  # several draws so flip/cutout are not trivially identity
        t = DSA(strategy=op).sample(gen(seed))
        assert t.op_names == (op,)
        assert_close(t(x)[:3], t(x[:3]), atol=1e-6)


@pytest.mark.parametrize("op", OPS)
def test_siamese_every_image_gets_the_same_parameters(op):
    x = images(n=1).expand(5, -1, -1, -1).contiguous()  # five copies of one image
    dsa = DSA(strategy=op)
    for seed in range(4):
        for out in (dsa.sample(gen(seed))(x), dsa(x, gen(seed))):  # explicit and __call__
            for i in range(1, 5):
                assert_close(out[i], out[0], atol=1e-6)


def test_per_sample_mode_differs_per_image_and_is_bound_to_batch_size():
    x = images(n=1).expand(4, -1, -1, -1).contiguous()
    t = DSA(strategy="scale", siamese=False).sample(gen(0), batch_size=4)
    out = t(x)
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError):
        t(x[:3])
    with pytest.raises(ValueError):
        DSA(siamese=False).sample(gen(0))  # batch size required
    assert DSA(strategy="rotate", siamese=False)(x, gen(1)).shape == x.shape


# ----------------------------------------------------------------------------- seeding

def test_same_seed_same_output_different_seed_different_output():
    x = images()
    for strategy in ("rotate", "scale", "color", DEFAULT_STRATEGY):
        dsa = DSA(strategy=strategy)
        assert torch.equal(dsa(x, gen(7)), dsa(x, gen(7)))
    dsa = DSA(strategy="rotate")
    assert not torch.allclose(dsa(x, gen(0)), dsa(x, gen(1)))


def test_mode_s_draws_one_op_and_covers_all_ops():
    dsa = DSA()
    seen = set()
    g = gen(0)
    for _ in range(200):
        names = dsa.sample(g).op_names
        assert len(names) == 1
        seen.update(names)
    assert seen == set(OPS)
    assert DSA(mode="M").sample(gen(0)).op_names == tuple(OPS)


# ----------------------------------------------------------------------------- gradients

@pytest.mark.parametrize("op", OPS)
def test_differentiable(op):
    x = images().requires_grad_(True)
    weights = torch.randn(6, 3, 16, 16, generator=gen(1))
    for seed in range(3):
        x.grad = None
        (DSA(strategy=op).sample(gen(seed))(x) * weights).sum().backward()
        assert x.grad is not None
        assert torch.isfinite(x.grad).all()
        assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("siamese", [True, False])
def test_gradient_is_correct(op, siamese):
    # For fixed parameters every op is affine in x, so the autograd vector-Jacobian product
    # must match a finite difference exactly: <w, f(x + v) - f(x)> == <grad_x <w, f(x)>, v>.
    # (Cheaper than torch.autograd.gradcheck, which also pays ~2 s of lazy imports.)
    g = gen(2)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=g, requires_grad=True)
    v = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=g)
    w = torch.randn(3, 3, 8, 8, dtype=torch.float64, generator=g)
    for seed in range(3):
        t = DSA(strategy=op, siamese=siamese).sample(gen(seed), batch_size=3)
        (grad,) = torch.autograd.grad((t(x) * w).sum(), x)
        with torch.no_grad():
            finite = ((t(x + v) - t(x)) * w).sum()
        assert torch.isclose((grad * v).sum(), finite, rtol=1e-9, atol=1e-9)


# ----------------------------------------------------------------------------- op semantics

def test_flip_forced_and_disabled():
    x = images()
    always = DSA(strategy="flip", params=DSAParams(prob_flip=1.0))
    never = DSA(strategy="flip", params=DSAParams(prob_flip=0.0))
    for seed in range(5):
        assert torch.equal(always(x, gen(seed)), x.flip(3))
        assert torch.equal(never(x, gen(seed)), x)


def test_zero_magnitudes_are_identity():
    x = images()
    for seed in range(5):
        assert torch.equal(DSA("crop", DSAParams(ratio_crop_pad=0.0))(x, gen(seed)), x)
        for align in (False, True):
            assert_close(
                DSA("rotate", DSAParams(ratio_rotate=0.0, align_corners=align))(x, gen(seed)),
                x, atol=1e-5)
            assert_close(
                DSA("scale", DSAParams(ratio_scale=1.0, align_corners=align))(x, gen(seed)),
                x, atol=1e-5)


@pytest.mark.parametrize("align", [False, True])
def test_rotate_direction(align):
    x = images(n=2, h=8, w=8)
    # ratio 90 and u = 1 -> +90 degrees, which the reference calls anticlockwise
    out = fixed("rotate", [1.0], DSAParams(ratio_rotate=90.0, align_corners=align))(x)
    assert_close(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)


def test_scale_hand_computation():
    x = images(n=1, c=2, h=8, w=8)
    # ratio 2 -> s = 1.5 u + 0.5: sx = 2 (width, zoom out x2), sy = 1 (height unchanged).
    # align_corners=False: output column c samples input column 2c - 3.5 (bilinear, zeros
    # outside), i.e. the mean of columns 2c-4 and 2c-3 for c in 2..5 and 0 elsewhere.
    out = fixed("scale", [1.0, 1.0 / 3.0], DSAParams(ratio_scale=2.0))(x)
    expected = torch.zeros_like(x)
    for c in range(2, 6):
        expected[..., c] = 0.5 * (x[..., 2 * c - 4] + x[..., 2 * c - 3])
    assert_close(out, expected, atol=1e-5)


def test_crop_shifts_with_zero_fill():
    x = torch.arange(1, 65, dtype=torch.float32).view(1, 1, 8, 8)
    # 8 px, pad 0.125 -> shifts in {-1, 0, 1}; u ~ 1 -> +1 rows, u = 0 -> -1 cols
    out = fixed("crop", [0.999, 0.0])(x)
    expected = torch.zeros_like(x)
    expected[..., :7, 1:] = x[..., 1:, :7]
    assert torch.equal(out, expected)


def test_cutout_box():
    x = torch.ones(2, 3, 8, 8)
    # box side 4; centre offsets in [0, 8]: u = 0.5 -> 4 -> rows/cols 2..5
    out = fixed("cutout", [0.5, 0.5])(x)
    expected = torch.ones(2, 3, 8, 8)
    expected[..., 2:6, 2:6] = 0
    assert torch.equal(out, expected)
    # u = 0 -> centre 0 -> box clipped to rows/cols 0..1
    out = fixed("cutout", [0.0, 0.0])(x)
    assert out[..., :2, :2].abs().sum() == 0 and out.sum() == 2 * 3 * (64 - 4)
    # even box: the centre can also be 8 (one past the last pixel) -> rows/cols 6..7
    out = fixed("cutout", [0.999, 0.999])(x)
    assert out[..., 6:, 6:].abs().sum() == 0 and out.sum() == 2 * 3 * (64 - 4)


def test_color_hand_computation():
    x = torch.tensor([[[[0.0, 1.0]], [[2.0, 5.0]]]])  # N=1, C=2, H=1, W=2
    # brightness only (saturation factor 0.5*2 = 1, contrast factor 0.5+0.5 = 1)
    assert_close(fixed("color", [0.0, 0.5, 0.5])(x), x - 0.5)
    # brightness +0.25; saturation x0.5 around channel mean; contrast x0.5 around image mean
    # after brightness [[.25, 1.25], [2.25, 5.25]], channel means [1.25, 3.25]
    # after saturation [[.75, 2.25], [1.75, 4.25]], image mean 2.25
    expected = torch.tensor([[[[1.5, 2.25]], [[2.0, 3.25]]]])
    assert_close(fixed("color", [0.75, 0.25, 0.0])(x), expected)


def test_saturation_is_identity_for_one_channel():
    x = images(c=1)
    # brightness 0, contrast factor 1: only saturation (factor 2 * 0.9) is left
    assert_close(fixed("color", [0.5, 0.9, 0.5])(x), x)


@pytest.mark.parametrize("op", OPS)
def test_one_channel_and_shapes(op):
    x = images(c=1, h=8, w=8)
    for seed in range(3):
        assert DSA(strategy=op)(x, gen(seed)).shape == x.shape


def test_none_strategy_and_bad_strategy():
    x = images()
    assert torch.equal(DSA("none")(x, gen(0)), x)
    with pytest.raises(BenchError):
        DSA("color_blur")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = images()
    for seed in range(8):
        t = DSA().sample(gen(seed))
        assert_close(t(x.cuda()).cpu(), t(x), atol=1e-4)
    xm, _, _, lam = cutmix(x.cuda(), torch.arange(6).cuda(), gen(0), prob=1.0)
    xm_cpu, _, _, lam_cpu = cutmix(x, torch.arange(6), gen(0), prob=1.0)
    assert lam == lam_cpu and torch.equal(xm.cpu(), xm_cpu)


# ----------------------------------------------------------------------------- strategy_for

def test_strategy_for():
    assert strategy_for("cifar10") == DEFAULT_STRATEGY
    assert "flip" in strategy_for("cifar10").split("_")
    assert "flip" in strategy_for("fashionmnist").split("_")
    for digits in ("digits", "mnist", "mnist5k", "svhn", "MNIST"):
        assert "flip" not in strategy_for(digits).split("_")
    assert strategy_for("digits") == "color_crop_cutout_scale_rotate"
    assert strategy_for("cifar10", cutout=False) == "color_crop_flip_scale_rotate"


# ----------------------------------------------------------------------------- CutMix

def test_cutmix_region_comes_from_permuted_batch():
    n = 8
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 16, 16).contiguous()
    y = torch.arange(n)
    applied = 0
    for seed in range(30):
        xm, ya, yb, lam = cutmix(x, y, gen(seed), prob=1.0)
        assert 0.0 <= lam <= 1.0
        assert torch.equal(ya, y)
        assert sorted(yb.tolist()) == list(range(n))  # a permutation
        for i in range(n):
            own = xm[i] == i
            other = xm[i] == yb[i]
            assert (own | other).all()  # every pixel is from image i or from its partner
            if yb[i] != i:
                frac_other = other.float().mean().item()
                assert frac_other == pytest.approx(1.0 - lam)
                applied += frac_other > 0
    assert applied > 0


def test_cutmix_prob_zero_is_identity_and_reproducible():
    x, y = images(), torch.arange(6)
    xm, ya, yb, lam = cutmix(x, y, gen(0), prob=0.0)
    assert xm is x and torch.equal(ya, y) and torch.equal(yb, y) and lam == 1.0
    a = cutmix(x, y, gen(5), prob=1.0)
    b = cutmix(x, y, gen(5), prob=1.0)
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and a[3] == b[3]
    hits = 0
    for s in range(100):
        hits += cutmix(x, y, gen(s))[0] is not x  # not applied: the input itself comes back
    assert 25 < hits < 75  # default prob 0.5


def test_cutmix_is_differentiable():
    x = images().requires_grad_(True)
    xm, _, _, _ = cutmix(x, torch.arange(6), gen(1), prob=1.0)
    xm.sum().backward()
    assert torch.isfinite(x.grad).all()
    # each pixel is copied exactly once in total, so d(sum)/dx is all ones
    assert_close(x.grad, torch.ones_like(x))


def test_cutmix_uses_beta():
    # Beta(0.01, 0.01) puts lam at ~0 or ~1: about half the mixes paste no box at all
    x, y = images(n=4, h=8, w=8), torch.arange(4)
    lams = [cutmix(x, y, gen(s), beta=0.01, prob=1.0)[3] for s in range(100)]
    assert 25 < sum(lam == 1.0 for lam in lams) < 75
    assert min(lams) < 0.5
