"""bench.train.loop: the pieces every training loop shares (one implementation each)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.errors import DivergedError
from bench.train.augmentation import strategy_for
from bench.train.loop import DSA_REFERENCE, guarded_step, has_batchnorm, resolve_dsa_strategy
from bench.train.models import create_model


def test_has_batchnorm():
    assert has_batchnorm(create_model("convnet_bn", 1, 10, 8))
    assert not has_batchnorm(create_model("convnet", 1, 10, 8))  # instance norm is GroupNorm
    assert has_batchnorm(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


def test_guarded_step_steps_and_refuses_a_nan_before_touching_anything():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=0.5)
    guarded_step(opt, (w ** 2).sum(), lambda v: "unused")
    assert torch.allclose(w.detach(), torch.tensor([0.0, 0.0]))  # w - 0.5 * 2w
    w.grad = torch.ones(2)
    before = w.detach().clone()
    with pytest.raises(DivergedError, match=r"^probe diverged at nan; lower lr$"):
        guarded_step(opt, w.sum() * float("nan"), lambda v: f"probe diverged at {v}; lower lr")
    assert torch.equal(w.detach(), before) and torch.equal(w.grad, torch.ones(2))


def test_resolve_dsa_strategy():
    assert resolve_dsa_strategy(DSA_REFERENCE, "digits") == strategy_for("digits")
    assert "flip" not in resolve_dsa_strategy("auto", "digits") and "flip" in resolve_dsa_strategy("auto", "cifar10")
    assert resolve_dsa_strategy("color_crop", "digits") == "color_crop"
    assert resolve_dsa_strategy("none", "cifar10") == "none"
