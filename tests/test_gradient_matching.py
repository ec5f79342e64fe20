"""Tests for the gradient-matching family: the distance, the loop table, DC and DSA."""

from __future__ import annotations

import csv
import math
import statistics
import time
from pathlib import Path

import pytest
import torch

from baselines.dc import DCConfig, DSAConfig
from baselines.gradient_matching import (
    ComposedDSA,
    RealPool,
    class_matching_loss,
    freeze_batchnorm,
    get_loops,
    gradient_distance,
    select_parameters,
)
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, default_config, distill
from bench.protocols import PROTOCOLS
from bench.store.synthetic import SyntheticSet
from bench.train.evaluation import evaluate_synthetic
from bench.train.models import create_model

# tiny budgets: one iteration of 2 matching rounds around 1 inner epoch, small real batches
TINY = {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "batch_real": 8}


def run(method: str, data, ipc: int = 1, seed: int = 0, **kwargs) -> SyntheticSet:
    overrides = {**TINY, **kwargs.pop("overrides", {})}
    return distill(method, DistillRequest(data, ipc=ipc, seed=seed, progress=False, **kwargs),
                   overrides=overrides)


_CACHE: dict[tuple[str, int], SyntheticSet] = {}


def cached(method: str, data, seed: int = 0) -> SyntheticSet:
    """One tiny run per (method, seed), shared by the tests that only read it."""
    if (method, seed) not in _CACHE:
        _CACHE[method, seed] = run(method, data, seed=seed)
    return _CACHE[method, seed]


# ----------------------------------------------------------------------------- distance

def _hand_case():
    """A conv kernel gradient (2,1,1,2), a linear one (2,2) and a bias (2,)."""
    syn = [torch.tensor([[[[1.0, 0.0]]], [[[0.0, 2.0]]]]), torch.tensor([[3.0, 4.0], [1.0, 0.0]]),
           torch.tensor([1.0, 2.0])]
    real = [torch.tensor([[[[1.0, 0.0]]], [[[1.0, 1.0]]]]), torch.tensor([[4.0, 3.0], [0.0, 1.0]]),
            torch.tensor([1.0, 0.0])]
    return syn, real


def test_distance_ours_is_rowwise_cosine_and_ignores_1d_params():
    syn, real = _hand_case()
    # conv rows: identical (0), then 1 - 2/(2*sqrt 2); linear rows: 1 - 24/25, then 1 - 0; bias: 0
    expected = (1 - 1 / (1 + 1e-6)) + (1 - 2 / (2 * math.sqrt(2) + 1e-6)) + (1 - 24 / (25 + 1e-6)) + 1.0
    assert gradient_distance(syn, real, "ours").item() == pytest.approx(expected, rel=1e-6)
    # the reference returns 0 for 1-D tensors: changing the bias gradient changes nothing
    syn_b = [syn[0], syn[1], torch.tensor([-5.0, 7.0])]
    assert gradient_distance(syn_b, real, "ours").item() == pytest.approx(expected, rel=1e-6)
    assert gradient_distance([syn[2]], [real[2]], "ours").item() == 0.0


def test_distance_mse_l1_cos_over_all_parameters():
    syn, real = _hand_case()
    # differences: conv (0, 0, -1, 1), linear (-1, 1, 1, -1), bias (0, 2)
    assert gradient_distance(syn, real, "mse").item() == pytest.approx(2 + 4 + 4)
    assert gradient_distance(syn, real, "l1").item() == pytest.approx(2 + 4 + 2)
    # concatenated: syn . real = 28, |syn| = 6, |real| = sqrt(30)
    expected_cos = 1 - 28 / (6 * math.sqrt(30) + 1e-6)
    assert gradient_distance(syn, real, "cos").item() == pytest.approx(expected_cos, rel=1e-6)


def test_distance_is_differentiable_and_rejects_unknown_metric():
    syn, real = _hand_case()
    syn = [s.clone().requires_grad_(True) for s in syn]
    gradient_distance(syn, real, "ours").backward()
    assert syn[0].grad is not None and syn[0].grad.abs().sum() > 0
    with pytest.raises(BenchError, match="unknown gradient distance"):
        gradient_distance(syn, real, "euclid")


# ----------------------------------------------------------------------------- loops

@pytest.mark.parametrize("ipc, loops", [(1, (1, 1)), (10, (10, 50)), (20, (20, 25)), (30, (30, 20)),
                                        (40, (40, 15)), (50, (50, 10))])
def test_loop_table_matches_reference(ipc, loops):
    assert get_loops(ipc) == loops


@pytest.mark.parametrize("ipc, loops", [(2, (1, 1)), (5, (1, 1)), (6, (10, 50)), (15, (10, 50)),
                                        (25, (20, 25)), (26, (30, 20)), (45, (40, 15)), (51, (50, 10)),
                                        (1000, (50, 10))])
def test_loop_rule_outside_table_is_nearest_then_50_10(ipc, loops):
    assert get_loops(ipc) == loops


def test_configs_for_settings():
    c10 = default_config("dc", "cifar10", 10)
    assert (c10.iterations, c10.outer_loop, c10.inner_loop, c10.lr_img, c10.lr_net, c10.batch_real,
            c10.init, c10.metric, c10.dsa) == (1000, 10, 50, 0.1, 0.01, 256, "noise", "ours", False)
    d100 = default_config("dsa", "cifar100", 50)
    assert (d100.outer_loop, d100.inner_loop, d100.init, d100.dsa) == (50, 10, "real", True)
    assert (DCConfig.eval_protocol, DSAConfig.eval_protocol) == ("dc-nodsa", "dc")
    small = default_config("dc", "digits", 10)
    assert small.iterations < 1000 and small.init == "real"
    with pytest.raises(BenchError, match="init"):
        DCConfig(init="zeros").validate()
    with pytest.raises(BenchError, match="outer_loop"):
        DSAConfig(outer_loop=0).validate()


# ----------------------------------------------------------------------------- building blocks

def test_matching_steps_lower_the_loss_on_a_fixed_network(digits):
    torch.manual_seed(0)
    net = create_model("convnet", 1, 10, 8)
    params = list(net.parameters())
    x_real = digits.train.get(digits.train.indices_by_class[3][:16])
    y_real = torch.full((16,), 3)
    syn = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    y_syn = torch.full((2,), 3)
    opt = torch.optim.SGD([syn], lr=0.1, momentum=0.5)
    losses = []
    for _ in range(10):
        loss = class_matching_loss(net, params, x_real, y_real, syn, y_syn, "ours")
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward(inputs=[syn])
        opt.step()
    assert losses[-1] < losses[0] * 0.9


def test_real_pool_draws_only_from_the_pool(digits):
    pool = [ix[:3] for ix in digits.train.indices_by_class]
    rp = RealPool(DistillRequest(digits, ipc=1, pool=pool, progress=False), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    allowed = digits.train.get(pool[4])
    x = rp.sample(4, 100, g)
    assert len(x) == 3 and all(any(torch.equal(a, b) for b in allowed) for a in x)
    assert len(rp.sample_filled(4, 7, g)) == 7
    xa, ya = rp.sample_any(1000, g)
    assert len(xa) == 30 and torch.bincount(ya, minlength=10).tolist() == [3] * 10


def test_batchnorm_freeze_sets_eval_mode_and_statistics():
    torch.manual_seed(0)
    net = create_model("convnet_bn", 1, 10, 8)
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    freeze_batchnorm(net, torch.randn(32, 1, 8, 8) * 3 + 2)
    assert bn and all(not m.training for m in bn)
    assert all(m.running_mean.abs().sum() > 0 for m in bn)


def test_select_parameters_idc_keeps_only_conv_kernels():
    net = create_model("convnet", 1, 10, 8)
    assert all(p.ndim == 4 for p in select_parameters(net, include_1d=False, include_2d=False))
    assert len(select_parameters(net)) == len(list(net.parameters()))


def test_composed_dsa_order_and_siamese():
    aug = ComposedDSA("color_crop_cutout", siamese=True)
    assert [p.strategy for p in aug.parts] == ["color", "crop", "cutout"]
    x = torch.randn(6, 1, 8, 8)
    t = aug.sample(torch.Generator().manual_seed(3))
    torch.testing.assert_close(t(x)[:2], t(x[:2]), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- DC / DSA runs

@pytest.mark.parametrize("method", ["dc", "dsa"])
def test_run_changes_images_and_is_reproducible(digits, method):
    init = run(method, digits, overrides={"iterations": 0})
    a = cached(method, digits)
    b = run(method, digits)
    assert torch.equal(a.images, b.images)
    assert a.images.shape == (10, 1, 8, 8) and a.labels.tolist() == list(range(10))
    assert not torch.allclose(a.images, init.images)
    assert len(a.metadata["matching_loss"]) == 1 and all(math.isfinite(v) for v in a.metadata["matching_loss"])
    c = run(method, digits, seed=1, overrides={"iterations": 0})
    assert not torch.equal(init.images, c.images)  # the seed decides the real images drawn


def test_dc_and_dsa_differ(digits):
    assert not torch.equal(cached("dc", digits).images, cached("dsa", digits).images)


def test_noise_init_and_batchnorm_model_run(digits):
    syn = run("dc", digits, overrides={"init": "noise", "model": "convnet_bn", "iterations": 1})
    assert torch.isfinite(syn.images).all()


def test_restricted_pool_real_init_equals_the_pool_image(digits):
    pool = [ix[5:6] for ix in digits.train.indices_by_class]
    syn = run("dc", digits, pool=pool, overrides={"iterations": 0, "init": "real"})
    assert torch.equal(syn.images, digits.train.get(torch.cat(pool)))


def test_restricted_pool_only_pool_images_are_read(digits, monkeypatch):
    pool = [ix[:4] for ix in digits.train.indices_by_class]
    allowed = set(torch.cat(pool).tolist())
    seen: list[int] = []
    original = digits.train.get

    def spy(indices):
        seen.extend(torch.as_tensor(indices).flatten().tolist())
        return original(indices)

    monkeypatch.setattr(digits.train, "get", spy)
    run("dsa", digits, pool=pool)
    assert seen and set(seen) <= allowed


def test_frozen_prefix_is_bit_identical_and_takes_part(digits):
    frozen = distill("random", DistillRequest(digits, ipc=1, seed=5, progress=False))
    before_x, before_y = frozen.images.clone(), frozen.labels.clone()
    with_frozen = run("dc", digits, frozen=frozen, segment=1)
    assert torch.equal(frozen.images, before_x) and torch.equal(frozen.labels, before_y)
    assert len(with_frozen) == 10  # only the new images come back
    assert with_frozen.metadata["frozen_images"] == 10
    assert not torch.equal(with_frozen.images, cached("dc", digits).images)


def test_frozen_with_another_factor_is_rejected(digits):
    frozen = SyntheticSet(torch.zeros(10, 1, 8, 8), torch.arange(10), factor=2)
    with pytest.raises(BenchError, match="factor"):
        run("dc", digits, frozen=frozen)


def test_output_passes_evaluation(digits, tiny_protocol):
    syn = cached("dsa", digits)
    res = evaluate_synthetic(syn, digits, protocol=tiny_protocol, num_models=1)
    assert 0.0 <= res.last_mean <= 100.0


# ----------------------------------------------------------------------------- quality (slow)

QUALITY_CSV = Path("results/matching/digits_quality.csv")
QUALITY_PROTOCOL = PROTOCOLS["dc"].with_epochs(300)  # one protocol for every method: comparable


@pytest.mark.slow
@pytest.mark.parametrize("ipc", [1, 10])
def test_digits_quality_against_random(digits, ipc):
    """DC / DSA / IDC at their digits CPU budgets vs random real images, 3 seeds, the same
    evaluation (DSA, 300 epochs, 2 models). Writes this IPC's rows of
    results/matching/digits_quality.csv (method, ipc, seed, acc, ...)."""
    seeds = [0, 1, 2]
    rows, accs = [], {}
    for method in ("random", "dc", "dsa", "idc"):
        for seed in seeds:
            start = time.perf_counter()
            syn = distill(method, DistillRequest(digits, ipc=ipc, seed=seed, progress=False))
            distill_s = time.perf_counter() - start
            res = evaluate_synthetic(syn, digits, protocol=QUALITY_PROTOCOL, num_models=2, seed=seed)
            accs.setdefault(method, []).append(res.last_mean)
            rows.append({"method": method, "ipc": ipc, "seed": seed, "acc": round(res.last_mean, 2),
                         "acc_std": round(res.last_std, 2), "distill_s": round(distill_s, 1),
                         "protocol": res.protocol})
    QUALITY_CSV.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if QUALITY_CSV.exists():  # replace this IPC's rows, keep the others
        with QUALITY_CSV.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if int(r["ipc"]) != ipc]
    with QUALITY_CSV.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept + rows)
    means = {m: statistics.fmean(v) for m, v in accs.items()}
    print(f"digits IPC {ipc}: " + ", ".join(f"{m} {v:.1f}" for m, v in means.items()))
    for method in ("dc", "dsa", "idc"):
        # every method starts from real images: it must stay well above chance and not
        # fall far below random selection
        assert means[method] > 30.0
        assert means[method] >= means["random"] - 5.0
