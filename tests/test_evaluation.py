import dataclasses
import math

import pytest
import torch

from bench.errors import DivergedError
from bench.methods.registry import DistillRequest, distill
from bench.protocols import PROTOCOLS, get_protocol, reference_protocol
from bench.train.evaluation import evaluate_synthetic, evaluate_training_set, make_augmentation, train_network
from bench.train.models import create_model


def test_protocol_defaults_follow_the_references():
    dc, idc = PROTOCOLS["dc"], PROTOCOLS["idc"]
    assert (dc.epochs, dc.batch_size, dc.lr, dc.momentum, dc.weight_decay, dc.schedule, dc.gamma, dc.dsa,
            dc.augment) == (1000, 256, 0.01, 0.9, 5e-4, "dc", 0.1, True, "dsa")
    assert PROTOCOLS["dc-nodsa"].epochs == 300 and not PROTOCOLS["dc-nodsa"].dsa
    assert (idc.batch_size, idc.gamma, idc.cutmix_prob, idc.schedule, idc.milestones, idc.augment) == \
        (64, 0.2, 0.5, "multistep", (2 / 3, 5 / 6), "idc")
    assert PROTOCOLS["mtt"].schedule == "dc" and PROTOCOLS["dc-aug"].epochs == 1000
    assert get_protocol("dc", 50).name == "dc@50ep" and get_protocol("dc@50ep").epochs == 50


def test_evaluation_reports_last_epoch_accuracy_and_no_test_selected_best(digits, tiny_protocol):
    syn = distill("random", DistillRequest(digits, ipc=5, seed=0))
    res = evaluate_synthetic(syn, digits, "convnet", tiny_protocol, num_models=2, seed=0)
    assert len(res.acc_last) == 2 and not hasattr(res, "acc_best")  # no max over test-set evaluations
    assert res.acc_val == [] and math.isnan(res.val_mean)  # val is part of the "full" training split
    assert 20 < res.last_mean <= 100 and res.protocol == "dc-nodsa@5ep"
    again = evaluate_synthetic(syn, digits, "convnet", tiny_protocol, num_models=2, seed=0)
    assert again.acc_last == res.acc_last  # reproducible on CPU


def test_validation_accuracy_of_the_same_models_when_val_is_held_out(tiny_protocol):
    from bench.data.datasets import load_dataset
    from bench.train.evaluation import accuracy

    held = load_dataset("digits", train_split="train-val")
    syn = distill("random", DistillRequest(held, ipc=5, seed=0))
    res = evaluate_synthetic(syn, held, "convnet", tiny_protocol, num_models=2, seed=0)
    assert len(res.acc_val) == 2 and 20 < res.val_mean <= 100
    # the very models that were tested: retrain model 0 as the evaluator seeds it, score it on val
    g = torch.Generator()
    g.manual_seed(0 * 7919 + 0)
    torch.manual_seed(0 * 7919 + 0)
    model = create_model("convnet", held.channels, held.num_classes, held.image_size)
    images, labels = syn.decode()
    train_network(model, images, labels, tiny_protocol, g, torch.device("cpu"), held.name)
    assert res.acc_val[0] == accuracy(model, held.val, torch.device("cpu"))
    assert res.acc_last[0] == accuracy(model, held.test, torch.device("cpu"))
    # the val score never replaces the test score: choosing on val leaves acc_last untouched
    full = evaluate_synthetic(syn, load_dataset("digits"), "convnet", tiny_protocol, num_models=2, seed=0)
    assert full.acc_val == [] and full.acc_last == res.acc_last


def test_evaluation_tests_each_model_once_after_its_last_epoch(digits, tiny_protocol, monkeypatch):
    import bench.train.evaluation as ev

    calls = []
    original = ev.accuracy
    monkeypatch.setattr(ev, "accuracy", lambda *a, **k: calls.append(1) or original(*a, **k))
    syn = distill("random", DistillRequest(digits, ipc=2, seed=0))
    ev.evaluate_synthetic(syn, digits, "convnet", tiny_protocol.with_epochs(8), num_models=2)
    assert len(calls) == 2  # one test evaluation per model: nothing to select a "best" from


def _schedule_trace(digits, protocol):
    """(lr, optimizer id, momentum buffer norm at the start of the pass) for every training pass."""
    x, y = digits.train.images[:20], digits.train.labels[:20]
    model = create_model("convnet", 1, 10, 8)
    trace, state = [], {}

    def on_epoch(epoch, net, opt):
        trace.append((epoch, opt.param_groups[0]["lr"], id(opt), state.get(id(opt))))
        state[id(opt)] = sum(float(s["momentum_buffer"].norm()) for s in opt.state.values())

    train_network(model, x, y, protocol, torch.Generator().manual_seed(0), torch.device("cpu"), "digits",
                  on_epoch=on_epoch)
    return trace


def test_dc_schedule_is_the_reference_evaluate_synset(digits):
    # VICO-UoE/DatasetCondensation utils.py evaluate_synset: range(Epoch+1) passes; after pass
    # ep == Epoch//2+1 (0-based) lr *= 0.1 and a NEW SGD optimizer (the momentum buffer restarts)
    for epochs in (6, 7):
        trace = _schedule_trace(digits, PROTOCOLS["dc-nodsa"].with_epochs(epochs))
        assert len(trace) == epochs + 1
        decay_at = epochs // 2 + 1  # 0-based pass after which the lr drops
        lrs = [lr for _, lr, _, _ in trace]
        assert lrs == pytest.approx([0.01] * (decay_at + 1) + [0.001] * (epochs - decay_at))
        ids = [i for _, _, i, _ in trace]
        assert len(set(ids[:decay_at + 1])) == 1 and len(set(ids[decay_at + 1:])) == 1
        assert ids[decay_at] != ids[decay_at + 1]  # a new optimizer: no momentum carried over
        assert trace[decay_at + 1][3] is None and trace[decay_at + 2][3] > 0


def test_idc_protocol_schedule_is_idc_train_py(digits):
    # snu-mllab/Efficient-Dataset-Condensation train.py: epochs 1..E, MultiStepLR [2E//3, 5E//6], gamma 0.2
    proto = dataclasses.replace(get_protocol("idc", 12), dsa=False, cutmix_prob=0.0)
    trace = _schedule_trace(digits, proto)
    assert len(trace) == 12
    lrs = [lr for _, lr, _, _ in trace]
    assert lrs == pytest.approx([0.01] * 8 + [0.002] * 2 + [0.0004] * 2)
    assert len({i for _, _, i, _ in trace}) == 1  # one optimizer throughout, as IDC's


def _op_rates(aug, monkeypatch, n_batches=300):
    """Share of batches on which each DSA op ran, with a fixed generator."""
    import bench.train.augmentation as A

    ran: list[str] = []
    for name, fn in list(A._OP_FNS.items()):
        monkeypatch.setitem(A._OP_FNS, name, lambda x, u, p, name=name, fn=fn: ran.append(name) or fn(x, u, p))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    counts: dict[str, int] = {}
    for _ in range(n_batches):
        ran.clear()
        aug(x, g)
        for name in set(ran):
            counts[name] = counts.get(name, 0) + 1
        assert len(ran) == len(set(ran))  # each op at most once per batch
    return {name: c / n_batches for name, c in counts.items()}


def test_idc_protocol_flips_and_colours_every_batch(monkeypatch):
    # IDC's DiffAug (snu-mllab/Efficient-Dataset-Condensation misc/augment.py): flip and colour on
    # EVERY batch, then ONE of crop/scale/rotate. DC's mode 'S' (one op of all per batch) reached
    # flip and colour on about 1 batch in 5 each.
    rates = _op_rates(make_augmentation(PROTOCOLS["idc"], "cifar10", 8), monkeypatch)
    assert rates["flip"] == 1.0 and rates["color"] == 1.0
    assert "cutout" not in rates  # IDC removes cutout when it evaluates with CutMix
    for op in ("crop", "scale", "rotate"):
        assert 0.25 < rates[op] < 0.42  # one of the three per batch
    assert sum(rates[op] for op in ("crop", "scale", "rotate")) == pytest.approx(1.0)
    dc = _op_rates(make_augmentation(PROTOCOLS["dc"], "cifar10", 8), monkeypatch)
    assert dc["flip"] < 0.3 and dc["color"] < 0.3  # the dc protocol keeps DC's one-op-per-batch DSA
    # per image: about half of a batch is flipped (p 0.5 each image), not all or none
    from bench.train.augmentation import ComposedDSA

    x = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(256, 1, 8, 8).contiguous()
    flipped = torch.isclose(ComposedDSA("flip", siamese=False)(x, torch.Generator().manual_seed(1)),
                            x.flip(3)).flatten(1).all(1)
    assert 0.35 < flipped.float().mean() < 0.65


def test_idc_protocol_drops_cutout_and_flip_for_digits():
    aug = make_augmentation(PROTOCOLS["idc"], "mnist5k", 28)
    assert aug.strategy == "color_crop_scale_rotate"
    assert [p.strategy for p in aug.parts] == ["color", "crop_scale_rotate"]


def test_dc_protocol_on_mnist_like_data_is_dcs_crop_scale_rotate():
    # VICO-UoE/DatasetCondensation utils.py get_daparam: DC evaluates MNIST with crop_scale_rotate, 1000 epochs
    assert reference_protocol("dc-nodsa", "mnist5k") == "dc-aug"
    assert reference_protocol("dc-nodsa@300ep", "mnist") == "dc-aug@300ep"
    assert reference_protocol("dc-nodsa", "digits") == "dc-nodsa"
    assert reference_protocol("dc-nodsa", "fashionmnist") == "dc-nodsa"
    assert reference_protocol("dc", "mnist5k") == "dc" and reference_protocol("idc", "mnist") == "idc"
    aug = make_augmentation(PROTOCOLS["dc-aug"], "mnist5k", 28)
    assert [op.strategy for op in aug.ops] == ["crop", "scale", "rotate"]
    # one op per IMAGE: in one batch some images are rotated/scaled (smooth) and some only shifted
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    out = aug(x, torch.Generator().manual_seed(0))
    integer_valued = torch.isclose(out, out.round(), atol=1e-5).flatten(1).all(1)
    assert 0 < integer_valued.sum() < 64


def test_runner_picks_dc_aug_for_dc_on_mnist5k():
    from bench.methods.registry import default_config
    from bench.spec.cells import method_protocol
    from bench.spec.grid import GridSpec

    spec = GridSpec(methods=["dc"], dataset="mnist5k", ipcs=[1])
    assert method_protocol(spec, "dc", default_config("dc", "mnist5k", 1)).name == "dc-aug"
    spec = GridSpec(methods=["dc"], dataset="digits", ipcs=[1])
    assert method_protocol(spec, "dc", default_config("dc", "digits", 1)).name == "dc-nodsa"


def test_dsa_and_cutmix_protocols_run(digits):
    syn = distill("random", DistillRequest(digits, ipc=2, seed=0))
    for name in ("dc", "idc"):
        res = evaluate_synthetic(syn, digits, "convnet", get_protocol(name, 3), num_models=1)
        assert 0 <= res.last_mean <= 100


def test_nan_loss_raises_diverged(digits):
    proto = dataclasses.replace(PROTOCOLS["dc-nodsa"].with_epochs(20), lr=1e12)
    syn = distill("random", DistillRequest(digits, ipc=5, seed=0))
    with pytest.raises(DivergedError, match="diverged"):
        evaluate_synthetic(syn, digits, "convnet", proto, num_models=1)


def test_convnet_on_full_digits_reaches_95_percent(digits):
    # the bar: ConvNet trained on the full train split >= 95% test accuracy under the protocol
    proto = PROTOCOLS["dc-nodsa"].with_epochs(30)
    res = evaluate_training_set(digits.train.images, digits.train.labels, digits, "convnet", proto, num_models=1)
    assert res.last_mean >= 95.0, res


def test_mtt_protocol_trains_at_the_sets_learned_lr(digits):
    syn = distill("random", DistillRequest(digits, ipc=2, seed=0))
    proto = get_protocol("mtt", 20)
    assert proto.lr_from_set and proto.batch_size == 256
    syn.metadata["syn_lr"] = 1e12  # the learned lr must be used: this one diverges
    with pytest.raises(DivergedError):
        evaluate_synthetic(syn, digits, "convnet", dataclasses.replace(proto, dsa=False), num_models=1)
    syn.metadata["syn_lr"] = 0.01
    res = evaluate_synthetic(syn, digits, "convnet", dataclasses.replace(proto, dsa=False), num_models=1)
    assert res.last_mean > 30


def test_zca_sets_are_trained_and_tested_in_whitened_space(digits, tmp_path, monkeypatch):
    import bench.train.evaluation as ev
    from bench.data.zca import ZCAWhitening, to_pixels

    zca = ZCAWhitening.fit(to_pixels(digits.train.images, digits))
    zca.save(tmp_path / "zca.safetensors")
    syn = distill("random", DistillRequest(digits, ipc=3, seed=0))
    syn.metadata["zca_file"] = str(tmp_path / "zca.safetensors")
    seen = {}
    original = ev.evaluate_training_set

    def record(images, labels, data, *args, target=None, **kw):
        seen["images"], seen["target"] = images, target
        return original(images, labels, data, *args, target=target, **kw)

    monkeypatch.setattr(ev, "evaluate_training_set", record)
    res = ev.evaluate_synthetic(syn, digits, "convnet", PROTOCOLS["dc-nodsa"].with_epochs(5), num_models=1)
    assert torch.allclose(seen["images"], zca.whiten_normalised(syn.images, digits), atol=1e-5)
    assert torch.allclose(seen["target"].images, zca.whiten_normalised(digits.test.images, digits), atol=1e-4)
    assert res.last_mean > 30
