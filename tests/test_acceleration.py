"""Runtime speed options (bench/train/acceleration.py): compiled vs eager training, off = the eager path,
auto's choice, bf16/channels_last only on CUDA, and none of them in a cell's key."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import bench.train.acceleration as acceleration
from bench.errors import BenchError
from bench.protocols import PROTOCOLS
from bench.train.acceleration import (
    AUTO_MIN_IMAGES,
    Acceleration,
    TrainingStep,
    check_for_device,
    for_spec_run,
    should_compile,
    training_step,
    use_options,
)
from bench.train.evaluation import accuracy, train_network
from bench.train.models import create_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def small(digits):
    idx = torch.cat([ix[:5] for ix in digits.train.indices_by_class])
    return digits.train.get(idx), digits.train.labels[idx]


@pytest.fixture(scope="module")
def digits():
    from bench.data.datasets import load_dataset

    return load_dataset("digits")


def _train(digits, small, protocol, mode: str):
    images, labels = small
    with use_options(Acceleration(compile=mode)):
        torch.manual_seed(0)
        model = create_model("convnet", digits.channels, digits.num_classes, digits.image_size)
        train_network(model, images, labels, protocol, torch.Generator().manual_seed(0), CPU, digits.name)
    return model


def test_compiled_training_matches_eager(digits, small):
    """IDC's schedule at batch 25 (CutMix boxes and plain batches, DSA-style augmentation): the
    compiled step makes the same weight updates up to float rounding (measured: at most 1.3e-5 where the
    first layer moved 2e-3 in 12 steps) and reaches the same test accuracy."""
    protocol = dataclasses.replace(PROTOCOLS["idc"].with_epochs(3), batch_size=25)
    eager = _train(digits, small, protocol, "off")
    compiled = _train(digits, small, protocol, "on")
    torch.manual_seed(0)
    init = create_model("convnet", digits.channels, digits.num_classes, digits.image_size).state_dict()
    for name, a in eager.state_dict().items():
        update, other = a - init[name], compiled.state_dict()[name] - init[name]
        assert update.abs().max() > 0, name
        assert torch.allclose(other, update, rtol=0, atol=0.02 * float(update.abs().max())), name
    assert accuracy(eager, digits.test, CPU) == pytest.approx(accuracy(compiled, digits.test, CPU), abs=0.2)


def test_compile_off_is_the_eager_code_path(digits, small, monkeypatch):
    """``off`` (and auto on a short run) never calls torch.compile nor enters autocast, and gives
    bit-identical weights to the plain eager loop."""
    reference = _train(digits, small, PROTOCOLS["dc"].with_epochs(2), "off")

    def refuse(*args, **kwargs):
        raise AssertionError("an accelerated path was entered")

    monkeypatch.setattr(torch, "compile", refuse)
    monkeypatch.setattr(torch, "autocast", refuse)
    monkeypatch.setattr(acceleration, "TrainingStep", refuse)
    for mode in ("off", "auto"):
        again = _train(digits, small, PROTOCOLS["dc"].with_epochs(2), mode)
        for a, b in zip(reference.state_dict().values(), again.state_dict().values()):
            assert torch.equal(a, b)


def test_compile_auto_choice():
    convnet = create_model("convnet", 1, 10, 8)
    auto = Acceleration()
    assert should_compile(auto, convnet, CPU, AUTO_MIN_IMAGES)
    assert not should_compile(auto, convnet, CPU, AUTO_MIN_IMAGES - 1)      # short runs (the tests) stay eager
    assert not should_compile(auto, convnet, torch.device("cuda"), 10**6)  # not measured on CUDA
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    assert not should_compile(auto, mlp, CPU, 10**6)                       # not measured on other archs
    assert should_compile(Acceleration(compile="on"), mlp, CPU, 1)
    assert not should_compile(Acceleration(compile="off"), convnet, CPU, 10**6)
    assert training_step(convnet, CPU, AUTO_MIN_IMAGES - 1, auto) is None


def test_compile_options_from_environment(monkeypatch):
    monkeypatch.setenv("DASM_COMPILE", "off")
    monkeypatch.setenv("DASM_AMP", "bf16")
    monkeypatch.setenv("DASM_CHANNELS_LAST", "on")
    assert Acceleration.from_env() == Acceleration(compile="off", amp="bf16", channels_last=True)
    monkeypatch.setenv("DASM_COMPILE", "sometimes")
    with pytest.raises(BenchError, match="compile must be one of"):
        Acceleration.from_env()


def test_gpu_options_refused_on_cpu_and_dropped_from_specs_there(monkeypatch):
    for name in ("DASM_COMPILE", "DASM_AMP", "DASM_CHANNELS_LAST"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(BenchError, match="CUDA runs only"):
        check_for_device(Acceleration(amp="bf16"), "cpu")
    with pytest.raises(BenchError, match="CUDA runs only"):
        training_step(create_model("convnet", 1, 10, 8), CPU, 10, Acceleration(channels_last=True))
    spec_runtime = {"amp": "bf16", "channels_last": True}
    assert for_spec_run(spec_runtime, "cpu") == Acceleration()                   # silently off on CPU
    assert for_spec_run(spec_runtime, "cuda") == Acceleration(amp="bf16", channels_last=True)
    monkeypatch.setenv("DASM_AMP", "off")                                        # the command line wins
    assert for_spec_run(spec_runtime, "cuda") == Acceleration(channels_last=True)


def test_amp_and_channels_last_step_mechanics_on_cpu():
    """The CUDA options' code path, exercised on CPU (bf16 autocast exists there too): the forward runs
    in bf16, the loss comes back float32, gradients reach every parameter in channels_last."""
    torch.manual_seed(0)
    model = create_model("convnet", 1, 10, 8).to(memory_format=torch.channels_last)
    step = TrainingStep(model, CPU, amp=True, channels_last=True)
    seen = []
    model.features[0].register_forward_hook(lambda m, i, o: seen.append((o.dtype, o.is_contiguous(
        memory_format=torch.channels_last))))
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    loss = step.loss(x, y)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert seen == [(torch.bfloat16, True)]
    assert all(p.grad is not None for p in model.parameters())
    mixed = step.cutmix_loss(x, y, y.flip(0), 0.25)
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed)


def test_runtime_spec_table_never_enters_cell_keys(tmp_path):
    from bench.spec.experiment import load_spec, parse_spec

    raw = {"dataset": "digits", "ipc": [1], "methods": {"random": {}}, "evaluation": {"epochs": 2, "models": 1}}
    plain = parse_spec(raw)
    fast = parse_spec({**raw, "runtime": {"compile": "on", "amp": "bf16", "channels_last": True}})
    assert fast.runtime == {"compile": "on", "amp": "bf16", "channels_last": True}
    assert dataclasses.asdict(plain.grid()) == dataclasses.asdict(fast.grid())
    with pytest.raises(BenchError, match=r"unknown \[runtime\] key 'fp16'"):
        parse_spec({**raw, "runtime": {"fp16": True}})
    with pytest.raises(BenchError, match="amp must be one of"):
        parse_spec({**raw, "runtime": {"amp": "fp16"}})
    for name in ("ipc-saturation-cifar10", "ipc-saturation-cifar100", "cross-arch-cifar10"):
        assert load_spec(name).runtime == {"amp": "bf16", "channels_last": True}


def test_cli_refuses_gpu_options_on_cpu(capsys, tmp_path):
    from bench.cli.main import main

    code = main(["evaluate", str(tmp_path / "missing.safetensors"), "--device", "cpu", "--amp", "bf16"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "CUDA runs only" in err[0]
    import os

    assert "DASM_AMP" not in os.environ  # restored after the command


def test_cli_compile_flag_reaches_the_environment(monkeypatch, tmp_path):
    import os

    from bench.cli import main as cli

    seen = {}
    monkeypatch.delenv("DASM_COMPILE", raising=False)
    monkeypatch.setitem(cli.COMMANDS, "grid", lambda args: seen.update(env=os.environ.get("DASM_COMPILE")))
    assert cli.main(["grid", "--methods", "random", "--ipc", "1", "--out", str(tmp_path), "--compile", "off"]) == 0
    assert seen["env"] == "off" and "DASM_COMPILE" not in os.environ


def test_compile_loss_functions_agree_eagerly():
    """The loss functions handed to torch.compile equal the evaluation's eager loss (uncompiled here)."""
    torch.manual_seed(0)
    model = create_model("convnet", 1, 10, 8)
    x, y = torch.randn(6, 1, 8, 8), torch.randint(0, 10, (6,))
    ref = F.cross_entropy(model(x), y)
    assert torch.allclose(acceleration._loss(model, x, y), ref)
    lam = torch.tensor(0.3)
    mixed = 0.3 * F.cross_entropy(model(x), y) + 0.7 * F.cross_entropy(model(x), y.flip(0))
    assert torch.allclose(acceleration._cutmix_loss(model, x, y, y.flip(0), lam), mixed, atol=1e-6)
