"""MTT: expert buffer (resume, shapes, ZCA), the matching loss, the gradient modes, the DASM interface."""

from __future__ import annotations

import csv
import dataclasses
import statistics
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from baselines import mtt_experts
from baselines.mtt import (
    MTTConfig,
    plan_student_steps,
    start_epoch_upper_bound,
    trajectory_gradients,
    trajectory_matching_loss,
)
from baselines.mtt_experts import ExpertBuffer, ExpertSettings, ParamLayout, ZCAWhitening, expert_model
from bench.data.datasets import load_dataset
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, apply_overrides, distill
from bench.protocols import PROTOCOLS
from bench.store.synthetic import SyntheticSet
from bench.train.augmentation import DSA, strategy_for
from bench.train.evaluation import evaluate_synthetic
from bench.train.models import create_model

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    """digits with 20 training images per class: experts train in a fraction of a second."""
    data = load_dataset("digits")
    idx = torch.cat([ix[:20] for ix in data.train.indices_by_class])
    return dataclasses.replace(data, train=data.train.subset(idx))


@pytest.fixture(scope="module")
def buffer_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mtt_buffers")


def tiny_config(root: Path, **changes) -> MTTConfig:
    base = MTTConfig(iterations=3, syn_steps=3, expert_epochs=1, max_start_epoch=2, lr_img=100.0,
                     num_experts=2, train_epochs=2, batch_train=64, buffer_dir=str(root))
    return dataclasses.replace(base, **changes)


# ----------------------------------------------------------------------------- expert buffer

def test_buffer_resume_keeps_finished_experts_and_ignores_temp_files(tiny, tmp_path, monkeypatch):
    settings = ExpertSettings("digits", epochs=2, batch_size=64)
    buf = ExpertBuffer.build(tiny, settings, tmp_path, num_experts=2)
    p0, p1, p2 = (buf.expert_path(e) for e in range(3))
    first, second = p0.read_bytes(), p1.read_bytes()
    mtime0 = p0.stat().st_mtime_ns
    traj1 = buf.load_trajectory(1)

    # a kill: expert 1 lost, its half-written temp file left behind, expert 2 truncated on disk
    p1.unlink()
    temp = p1.parent / f".{p1.name}.killed.tmp"
    temp.write_bytes(second[: len(second) // 2])
    p2.write_bytes(second[: len(second) // 3])

    trained = []
    real_train = mtt_experts.train_expert

    def counting(data, s, expert, *args, **kwargs):
        trained.append(expert)
        return real_train(data, s, expert, *args, **kwargs)

    monkeypatch.setattr(mtt_experts, "train_expert", counting)
    buf = ExpertBuffer.build(tiny, settings, tmp_path, num_experts=3)
    assert trained == [1, 2]                       # expert 0 kept, 1 and the truncated 2 rebuilt
    assert p0.read_bytes() == first and p0.stat().st_mtime_ns == mtime0
    # the rebuilt expert is the same network (seeded); CPU conv kernels may differ in the last bits
    # between allocations, so compare to float tolerance rather than bit for bit
    assert torch.allclose(buf.load_trajectory(1), traj1, rtol=0, atol=1e-5)
    assert buf.load_trajectory(2).shape == buf.load_trajectory(0).shape
    assert temp.exists() and buf.num_experts == 3  # temp ignored, never read as an expert

    trained.clear()
    ExpertBuffer.build(tiny, settings, tmp_path, num_experts=3)
    assert trained == []


def test_snapshots_count_shape_and_start(tiny, tmp_path):
    settings = ExpertSettings("digits", epochs=3, batch_size=64)
    buf = ExpertBuffer.build(tiny, settings, tmp_path, num_experts=1)
    traj = buf.load_trajectory(0)
    model = create_model("convnet", 1, 10, 8)
    assert traj.shape == (4, sum(p.numel() for p in model.parameters()))
    assert traj.dtype == torch.float32
    init = ParamLayout(expert_model(tiny, settings, 0)).flatten()
    assert torch.equal(traj[0], init)              # snapshot 0 is the untrained network
    assert all((traj[i + 1] - traj[i]).norm() > 0 for i in range(3))
    assert torch.equal(buf.load_epochs(0, [1, 3]), traj[[1, 3]])
    assert buf.val_accuracy(0) is not None
    # the folder is keyed by (dataset, arch, lr, zca, epochs)
    assert buf.directory.relative_to(tmp_path).parts[:2] == ("digits", "convnet")
    assert "lr0.01_nozca_ep3" in buf.directory.name


def test_flat_forward_matches_module(tiny):
    torch.manual_seed(0)
    model = create_model("convnet", 1, 10, 8)
    layout = ParamLayout(model)
    x = tiny.train.images[:5]
    assert torch.allclose(layout.forward(layout.flatten(), x), model(x), atol=1e-6)


def test_zca_matches_kornia_formula_and_inverts():
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(200, 1, 4, 4, generator=g) * torch.linspace(0.2, 1.0, 16).view(1, 1, 4, 4)
    zca = ZCAWhitening.fit(pixels)
    flat = pixels.reshape(200, -1).double()
    cov = torch.cov(flat.T)                        # unbiased, as kornia
    evals, evecs = torch.linalg.eigh(cov)
    expected = evecs @ torch.diag((evals + 0.1).rsqrt()) @ evecs.T
    assert torch.allclose(zca.transform.double(), expected, atol=1e-5)
    z = zca.whiten(pixels)
    assert torch.allclose(z.reshape(200, -1).mean(0), torch.zeros(16), atol=1e-5)
    assert torch.allclose(zca.unwhiten(z), pixels, atol=1e-5)


def test_zca_matches_kornia_zca_whitening_numerically():
    # the references whiten with kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)
    # (GeorgeCazenavette/mtt-distillation utils.py get_dataset; DATM's copy of it)
    kornia = pytest.importorskip("kornia")
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(300, 3, 4, 4, generator=g) * torch.linspace(0.2, 1.0, 16).view(1, 1, 4, 4)
    pixels[:, 1] = 0.7 * pixels[:, 0] + 0.3 * pixels[:, 1]  # correlated channels: a non-trivial covariance
    ours = ZCAWhitening.fit(pixels)
    ref = kornia.enhance.ZCAWhitening(eps=0.1, compute_inv=True)
    ref.fit(pixels.double())
    assert torch.allclose(ours.mean.double().flatten(), ref.mean_vector.flatten(), atol=1e-6)
    assert torch.allclose(ours.transform.double(), ref.transform_matrix, atol=1e-5)
    assert torch.allclose(ours.inverse.double(), ref.transform_inv, atol=1e-5)
    test = torch.rand(20, 3, 4, 4, generator=g)
    assert torch.allclose(ours.whiten(test).double(), ref(test.double()), atol=1e-5)
    assert torch.allclose(ours.unwhiten(ours.whiten(test)).double(), ref.inverse_transform(ref(test.double())),
                          atol=1e-5)


# ----------------------------------------------------------------------------- matching

def test_loss_normalisation_hand_case():
    start, target = torch.tensor([0.0, 0.0]), torch.tensor([3.0, 4.0])
    assert trajectory_matching_loss(torch.tensor([0.0, 4.0]), start, target).item() == pytest.approx(9 / 25)
    assert trajectory_matching_loss(start, start, target).item() == pytest.approx(1.0)
    assert trajectory_matching_loss(target, start, target).item() == 0.0


def _gradient_case(syn_steps: int):
    data = load_dataset("digits")
    torch.manual_seed(0)
    layout = ParamLayout(create_model("convnet", 1, 10, 8, width=16).double())
    start = layout.flatten()
    target = start + 0.05 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    images = data.train.images[:20].double()
    fixed = data.train.images[20:26].double()      # frozen images join the pool, no gradient
    labels = torch.cat([data.train.labels[20:26], data.train.labels[:20]])
    plan = plan_student_steps(26, syn_steps, 8, DSA(strategy_for("digits"), siamese=False),
                              torch.Generator().manual_seed(3))
    lr = torch.tensor(0.05, dtype=torch.float64)
    return {mode: trajectory_gradients(layout.forward, start, target, images, labels, lr, plan, fixed, mode)
            for mode in ("unrolled", "checkpointed", "tesla")}


def test_checkpointed_gradient_equals_unrolled():
    res = _gradient_case(syn_steps=4)
    u, c = res["unrolled"], res["checkpointed"]
    assert u.grad_images.abs().max() > 0 and u.grad_lr.abs() > 0
    assert c.loss == pytest.approx(u.loss, rel=1e-12)
    assert torch.allclose(c.grad_images, u.grad_images, rtol=1e-9, atol=1e-15)
    assert torch.allclose(c.grad_lr, u.grad_lr, rtol=1e-9)


def test_tesla_gradient_is_exact_for_one_step_and_first_order_beyond():
    one = _gradient_case(syn_steps=1)
    assert torch.allclose(one["tesla"].grad_images, one["unrolled"].grad_images, rtol=1e-9, atol=1e-15)
    assert torch.allclose(one["tesla"].grad_lr, one["unrolled"].grad_lr, rtol=1e-9)
    four = _gradient_case(syn_steps=4)
    t, u = four["tesla"], four["unrolled"]
    # TESLA drops the terms through later student parameters: close in direction, not equal
    cos = F.cosine_similarity(t.grad_images.flatten(), u.grad_images.flatten(), dim=0)
    assert 0.9 < cos < 1 - 1e-6
    assert not torch.allclose(t.grad_lr, u.grad_lr, rtol=1e-3)


def test_start_epoch_window_expands_linearly():
    cfg = MTTConfig(max_start_epoch=2, max_start_epoch_final=6, expansion_iterations=4)
    assert [start_epoch_upper_bound(cfg, it) for it in range(6)] == [2, 3, 4, 5, 6, 6]
    assert start_epoch_upper_bound(MTTConfig(max_start_epoch=7), 1000) == 7


def test_config_validation_and_settings():
    with pytest.raises(BenchError, match="gradient_mode"):
        apply_overrides(MTTConfig(), {"gradient_mode": "sideways"})
    with pytest.raises(BenchError, match="exceed"):
        apply_overrides(MTTConfig(), {"max_start_epoch": 49})
    with pytest.raises(BenchError, match="expansion_iterations"):
        apply_overrides(MTTConfig(), {"max_start_epoch_final": 30})
    for dataset in ("digits", "mnist5k", "cifar10", "cifar100"):
        for ipc in (1, 10, 50):
            MTTConfig.for_setting(dataset, ipc).validate()


# Every published row: (dataset, ipc) -> (syn_steps, expert_epochs, max_start_epoch, batch_syn, zca,
# lr_img, lr_lr, lr_teacher). MTT: GeorgeCazenavette/mtt-distillation readme.md (its command and the
# hyper-parameter table); DATM: NUS-HPC-AI-Lab/DATM configs/*/ConvIN/IPC*.yaml.
MTT_PUBLISHED = {
    ("cifar10", 1): (50, 2, 2, None, True, 100.0, 1e-7, 0.01),
    ("cifar10", 10): (30, 2, 20, None, True, 100.0, 1e-5, 0.001),
    ("cifar10", 50): (30, 2, 40, None, False, 1000.0, 1e-5, 0.001),
    ("cifar100", 1): (20, 3, 20, None, True, 1000.0, 1e-5, 0.01),
    ("cifar100", 10): (20, 2, 20, None, False, 1000.0, 1e-5, 0.01),
    ("cifar100", 50): (80, 2, 40, 125, True, 1000.0, 1e-5, 0.01),
    ("cifar10", 500): (40, 2, 60, 1000, True, 50.0, 1e-5, 0.01),
    ("cifar10", 1000): (100, 2, 60, 1000, True, 50.0, 1e-5, 0.01),
    ("cifar100", 100): (80, 2, 70, 1000, True, 50.0, 1e-5, 0.01),
}


@pytest.mark.parametrize("setting", sorted(MTT_PUBLISHED))
def test_mtt_settings_match_the_published_commands(setting):
    c = MTTConfig.for_setting(*setting)
    got = (c.syn_steps, c.expert_epochs, c.max_start_epoch, c.batch_syn, c.zca, c.lr_img, c.lr_lr, c.lr_teacher)
    assert got == MTT_PUBLISHED[setting]
    c.validate()


def test_mtt_settings_in_between_ipcs_take_the_next_published_row():
    assert MTTConfig.for_setting("cifar10", 5) == MTTConfig.for_setting("cifar10", 10)
    assert MTTConfig.for_setting("cifar10", 20) == MTTConfig.for_setting("cifar10", 50)
    assert MTTConfig.for_setting("cifar100", 2) == MTTConfig.for_setting("cifar100", 10)


def test_mtt_settings_above_ipc_50_are_datms_with_the_checkpointed_gradient():
    for setting, (lo, hi) in {("cifar10", 500): (40, 60), ("cifar10", 1000): (40, 60),
                              ("cifar100", 100): (30, 70)}.items():
        c = MTTConfig.for_setting(*setting)
        assert (c.min_start_epoch, c.max_start_epoch) == (lo, hi)
        assert c.gradient_mode == "checkpointed"  # the unrolled graph over 1,000-image steps does not fit
        assert (c.iterations, c.train_epochs) == (10000, 100)  # DATM: Iteration 10000; buffers --train_epochs=100


@pytest.mark.parametrize("setting", [("cifar10", 100), ("cifar10", 200), ("cifar100", 200), ("cifar10", 2000)])
def test_mtt_settings_refuse_an_ipc_above_50_without_a_published_row(setting):
    config = MTTConfig.for_setting(*setting)
    with pytest.raises(BenchError, match=f"no published MTT/DATM setting for {setting[0]} IPC {setting[1]}"):
        config.validate()
    assert "\n" not in config.no_reference


def test_mtt_refusal_is_one_line_from_the_cli(tmp_path, capsys):
    from bench.cli.main import main

    assert main(["distill", "--method", "mtt", "--dataset", "digits", "--ipc", "1", "--set", "no_reference=why not",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: mtt: why not"]


# ----------------------------------------------------------------------------- the distiller

def test_same_seed_identical_and_output_evaluable(tiny, buffer_root):
    cfg = tiny_config(buffer_root)
    a = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False), config=cfg)
    b = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False), config=cfg)
    c = distill("mtt", DistillRequest(tiny, ipc=1, seed=1, progress=False), config=cfg)
    assert torch.equal(a.images, b.images) and a.metadata["syn_lr"] == b.metadata["syn_lr"]
    assert not torch.equal(a.images, c.images)
    assert a.labels.tolist() == [c for c in range(10)]
    syn_lr = a.metadata["syn_lr"]
    assert isinstance(syn_lr, float) and syn_lr != cfg.lr_teacher  # learned
    protocol = dataclasses.replace(PROTOCOLS["dc"], name="mtt", lr=syn_lr).with_epochs(2)
    res = evaluate_synthetic(a, tiny, protocol=protocol, num_models=1)
    assert 0.0 <= res.last_mean <= 100.0


def test_iterations_change_images_and_modes_agree(tiny, buffer_root):
    zero = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False),
                   config=tiny_config(buffer_root, iterations=0))
    unrolled = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False),
                       config=tiny_config(buffer_root, iterations=2))
    checkpointed = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False),
                           config=tiny_config(buffer_root, iterations=2, gradient_mode="checkpointed"))
    assert not torch.equal(zero.images, unrolled.images)
    assert torch.allclose(unrolled.images, checkpointed.images, atol=1e-4)
    assert unrolled.metadata["syn_lr"] == pytest.approx(checkpointed.metadata["syn_lr"], rel=1e-4)


def test_pool_restricts_initial_real_images(tiny, buffer_root):
    pool = [ix[:3] for ix in tiny.train.indices_by_class]
    syn = distill("mtt", DistillRequest(tiny, ipc=2, seed=0, pool=pool, progress=False),
                  config=tiny_config(buffer_root, iterations=0))
    allowed = tiny.train.get(torch.cat(pool))
    for img, label in zip(syn.images, syn.labels):
        hits = [i for i in range(len(allowed)) if torch.equal(allowed[i], img)]
        assert len(hits) == 1 and hits[0] // 3 == int(label)


def test_frozen_prefix_bit_identical_and_trains_the_student(tiny, buffer_root, monkeypatch):
    import baselines.mtt as mtt_module

    frozen = distill("random", DistillRequest(tiny, ipc=1, seed=5, progress=False))
    before_images, before_labels = frozen.images.clone(), frozen.labels.clone()
    seen = []
    real = mtt_module.trajectory_gradients

    def spy(forward, start, target, images, labels, syn_lr, plan, fixed_images=None, mode="unrolled"):
        seen.append((fixed_images.clone(), labels.clone()))
        return real(forward, start, target, images, labels, syn_lr, plan, fixed_images, mode)

    monkeypatch.setattr(mtt_module, "trajectory_gradients", spy)
    syn = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, frozen=frozen, segment=1, progress=False),
                  config=tiny_config(buffer_root))
    assert torch.equal(frozen.images, before_images) and torch.equal(frozen.labels, before_labels)
    assert len(syn) == 10 and syn.segment_ids.tolist() == [1] * 10
    assert len(seen) == 3
    for fixed, labels in seen:                     # the frozen images are in every student pool
        assert torch.equal(fixed, before_images)
        assert torch.equal(labels[:10], before_labels) and len(labels) == 20
    joined = SyntheticSet.concat([frozen, syn])
    assert torch.equal(joined.images[:10], before_images)


def test_zca_buffer_and_round_trip_to_normalised_space(tiny, buffer_root):
    cfg = tiny_config(buffer_root, zca=True, iterations=0)
    syn = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False), config=cfg)
    reference = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False),
                        config=tiny_config(buffer_root, iterations=0))
    # same real init, whitened for the distiller and mapped back: equal up to rounding
    assert torch.allclose(syn.images, reference.images, atol=1e-3)
    zca_file = Path(syn.metadata["zca_file"])
    assert zca_file.exists() and "zca" in zca_file.parent.name
    zca = ZCAWhitening.load(zca_file)
    assert zca.transform.shape == (64, 64)
    moved = distill("mtt", DistillRequest(tiny, ipc=1, seed=0, progress=False),
                    config=tiny_config(buffer_root, zca=True, iterations=1))
    assert torch.isfinite(moved.images).all() and not torch.equal(moved.images, syn.images)


# ----------------------------------------------------------------------------- quality (slow)

@pytest.mark.slow
def test_mtt_beats_random_on_digits():
    """MTT vs random at IPC 1 and 10 over 3 seeds (digits; the for_setting budget); writes a CSV."""
    data = load_dataset("digits")
    epochs = 300
    rows = []
    for ipc in (1, 10):
        for seed in range(3):
            t0 = time.perf_counter()
            syn = distill("mtt", DistillRequest(data, ipc=ipc, seed=seed, progress=False))
            seconds = time.perf_counter() - t0
            mtt_protocol = dataclasses.replace(PROTOCOLS["dc"], name="mtt",
                                               lr=syn.metadata["syn_lr"]).with_epochs(epochs)
            rnd = distill("random", DistillRequest(data, ipc=ipc, seed=seed, progress=False))
            for method, s, proto in (("mtt", syn, mtt_protocol), ("random", rnd, PROTOCOLS["dc"].with_epochs(epochs))):
                res = evaluate_synthetic(s, data, protocol=proto, num_models=3, seed=seed)
                rows.append({"method": method, "ipc": ipc, "seed": seed, "protocol": proto.name,
                             "eval_lr": proto.lr, "acc_last_mean": round(res.last_mean, 2),
                             "acc_last_std": round(res.last_std, 2),
                             "distill_seconds": round(seconds, 1) if method == "mtt" else 0.0})
    out = Path("results/mtt/digits_quality.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    mean = {(m, ipc): statistics.fmean(r["acc_last_mean"] for r in rows if r["method"] == m and r["ipc"] == ipc)
            for m in ("mtt", "random") for ipc in (1, 10)}
    # IPC 1: a clear win (measured ~92 vs ~72). IPC 10: random real digits already reach ~95%, near
    # the ceiling; MTT measured level with it (95.5 vs 95.4), so require "not worse" there.
    assert mean[("mtt", 1)] > mean[("random", 1)] + 5, mean
    assert mean[("mtt", 10)] > mean[("random", 10)] - 1, mean


def test_mtt_settings_refused_cells_are_skipped_by_the_grid(tmp_path, monkeypatch):
    from bench.run.runner import run_grid
    from bench.spec.grid import GridSpec

    logged = []
    monkeypatch.setattr(MTTConfig, "for_setting", classmethod(lambda cls, d, i: cls(no_reference="no row here")))
    spec = GridSpec(methods=["mtt", "random"], dataset="digits", ipcs=[1], protocol="dc-nodsa", epochs=1,
                    num_models=1)
    df = run_grid(spec, tmp_path, device="cpu", progress=False, log=logged.append)
    assert df["method"].tolist() == ["random"]
    assert any("skipping mtt ipc=1: no row here" in line for line in logged)
