"""Equal work before timing: our steps and the re-stated reference steps compute the same thing.

The fast tests here run in the default suite, on tiny shapes: for DC, DM, IDC and MTT, one step of
our code and one of the reference re-statement (``reference_steps``), handed the same initial
images, the same network and the same real batches, give the same loss and the same updated
images (or gradients). They cannot share augmentation draws (the references draw from the global
generator re-seeded from the clock, we from seeded ``torch.Generator`` streams), so these checks
switch augmentation off; with it on, ``compare_references.py`` reports both sides' loss magnitudes.

``test_against_reference`` is the timed comparison (``nox -s bench -- -k reference``; skipped in
the default run): it alternates the two sides and prints the median ratio (see
``compare_references.py`` and results/perf/references.md).
"""

from __future__ import annotations

import pytest
import torch
from reference_steps import dc_dm
from reference_steps import idc as ref_idc
from reference_steps import mtt as ref_mtt
from reference_steps.cases import reference_factory
from reference_steps.networks import ReferenceConvNet

from bench.data.datasets import load_dataset
from bench.methods.registry import DistillRequest, apply_overrides, default_config, get_method
from bench.train.models import ConvNet, create_model

IPC = 2


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(autouse=True)
def _one_thread_here():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # float summation order as in the timed runs
    yield
    torch.set_num_threads(before)


def _same_params(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_convnet_is_the_reference_convnet():
    """At the reference's own 32x32x3 shape our ConvNet is the reference's: same parameter names,
    shapes and seeded init, same outputs. On 8x8 digits ours is that class at depth 2 with padding 1
    (the reference's rule would pad a 1-channel input by 3, a 28x28-MNIST rule); the reference side of
    the timed comparison builds the reference's class at that depth and padding
    (``cases.reference_factory``), with its own ``nn.AvgPool2d`` where ours has the faster
    ``AvgPool2x2``: same outputs and gradients, bit for bit."""
    x = torch.randn(4, 3, 32, 32)
    torch.manual_seed(0)
    ours = ConvNet(3, 10, 32)
    torch.manual_seed(0)
    ref = ReferenceConvNet(3, 10, (32, 32))
    assert ours.depth == 3 and _same_params(ours, ref)
    assert torch.equal(ours(x), ref(x)) and torch.equal(ours.embed(x), ref.embed(x))
    torch.manual_seed(1)
    ours8 = create_model("convnet", 1, 10, 8)
    torch.manual_seed(1)
    assert _same_params(ours8, ReferenceConvNet(1, 10, (8, 8), net_depth=2, first_pad=1))
    assert not _same_params(ours8, ReferenceConvNet(1, 10, (8, 8)))  # the reference's own 8x8 rule differs
    torch.manual_seed(1)
    ref8 = reference_factory(load_dataset("digits"))()
    x8 = torch.randn(6, 1, 8, 8)
    grads = [torch.autograd.grad(net(x8).square().sum(), list(net.parameters())) for net in (ours8, ref8)]
    assert torch.equal(ours8(x8), ref8(x8)) and all(torch.equal(a, b) for a, b in zip(*grads))


def _seeded(factory, seed):
    torch.manual_seed(seed)
    return factory()


def _request(digits, seed=3):
    return DistillRequest(digits, IPC, seed=seed, progress=False)


def _ours(method, digits, **overrides):
    config = apply_overrides(default_config(method, "digits", IPC), {"iterations": 1, **overrides})
    return get_method(method).fn(_request(digits), config), config


def test_dc_step_equal_work(digits):
    """DC: two matching rounds with a one-epoch net update between them (main.py 146-218)."""
    from baselines.gradient_matching import RealPool, seeded_model

    ours, cfg = _ours("dc", digits, outer_loop=2, inner_loop=1, batch_real=16)
    req = _request(digits)  # replay our random streams for the reference (baselines/dc.py: 0 init, 1 real, 3 net)
    g_init, g_real, g_net = req.generator(0), req.generator(1), req.generator(3)
    pool = RealPool(req, torch.device("cpu"))
    image_syn = torch.cat([pool.sample_filled(c, IPC, g_init) for c in range(10)]).requires_grad_(True)
    opt = torch.optim.SGD([image_syn], lr=cfg.lr_img, momentum=cfg.momentum_img)
    args = dc_dm.RefArgs(ipc=IPC, outer_loop=2, inner_loop=1, batch_real=16, batch_train=cfg.batch_train)
    loss = dc_dm.dc_iteration(args, lambda: seeded_model(reference_factory(digits), g_net, "cpu"),
                              lambda c, n: pool.sample(c, n, g_real), image_syn,
                              torch.arange(10).repeat_interleave(IPC), opt, 10)
    assert ours.metadata["matching_loss"][0] == pytest.approx(loss, rel=1e-3)
    assert torch.allclose(ours.images, image_syn.detach(), atol=1e-5)
    assert not torch.allclose(ours.images, torch.cat([pool.sample_filled(c, IPC, _request(digits).generator(0))
                                                      for c in range(10)]), atol=1e-3)  # the step moved them


def test_dm_step_equal_work(digits):
    """DM without augmentation: one iteration (main_DM.py 138-194)."""
    from baselines.dm import random_embedder

    ours, cfg = _ours("dm", digits, batch_real=16, dsa_strategy="none")
    req = _request(digits)  # baselines/dm.py streams: 0 init, 1 real batches, 3 the net seed
    g_init, g_real = req.generator(0), req.generator(1)
    net_seed = int(torch.randint(2**62, (1,), generator=req.generator(3)))
    pools = [digits.train.indices_by_class[c] for c in range(10)]
    image_syn = digits.train.get(torch.cat([p[torch.randperm(len(p), generator=g_init)[:IPC]] for p in pools]))
    image_syn.requires_grad_(True)
    opt = torch.optim.SGD([image_syn], lr=cfg.lr_img, momentum=cfg.momentum_img)
    args = dc_dm.RefArgs(ipc=IPC, batch_real=16, dsa=False)
    assert _same_params(random_embedder("convnet", digits, net_seed, torch.device("cpu")),
                        _seeded(reference_factory(digits), net_seed))
    loss = dc_dm.dm_iteration(args, lambda: _seeded(reference_factory(digits), net_seed),
                              lambda c, n: digits.train.get(
                                  pools[c][torch.randperm(len(pools[c]), generator=g_real)[:n]]),
                              image_syn, opt, 10)
    assert ours.metadata["dm_loss_first"] == pytest.approx(loss, rel=1e-5)
    assert torch.allclose(ours.images, image_syn.detach(), atol=1e-6)


class _ReplayLoader:
    """The reference's ClassMemDataLoader, fed our IDC draws (pixel space, as the reference holds it)."""

    def __init__(self, pool, g_real, g_train, n_data, batch, mean, std):
        self.pool, self.g_real, self.g_train = pool, g_real, g_train
        self.n_data, self.batch, self.mean, self.std = n_data, batch, mean, std

    def class_sample(self, c):
        x = self.pool.sample(c, self.batch, self.g_real)
        return x * self.std + self.mean, torch.full((len(x),), c)

    def __iter__(self):  # baselines/idc.py train_net: sample_any, then train_on_tensors' shuffle
        x, y = self.pool.sample_any(self.n_data, self.g_train)
        order = torch.randperm(len(x), generator=self.g_train)
        for s in range(0, len(x), self.batch):
            yield x[order[s:s + self.batch]] * self.std + self.mean, y[order[s:s + self.batch]]


def test_idc_step_equal_work(digits):
    """IDC at factor 2 without augmentation or CutMix: two rounds of class matches + a real-data net
    epoch (condense.py 498-555): same loss, same images."""
    from baselines.gradient_matching import RealPool, seeded_model
    from baselines.idc import multi_formation_init

    ours, cfg = _ours("idc", digits, factor=2, inner_loop=2, n_data=32, batch_real=16, net_batch=16,
                      aug_type="", mixup_net="vanilla")
    req = _request(digits)  # baselines/idc.py streams: 0 init, 1 real, 3 net, 4 net training
    g_init, g_real, g_net, g_train = (req.generator(s) for s in (0, 1, 3, 4))
    pool = RealPool(req, torch.device("cpu"))
    mean, std = torch.tensor(digits.mean).view(1, -1, 1, 1), torch.tensor(digits.std).view(1, -1, 1, 1)
    stored = torch.cat([multi_formation_init(pool.sample_filled(c, IPC * 4, g_init), 2) for c in range(10)])
    synset = (stored * std + mean).requires_grad_(True)
    model = seeded_model(reference_factory(digits), g_net, "cpu")
    opt = torch.optim.SGD([synset], lr=cfg.lr_img * IPC / 10, momentum=cfg.momentum_img)
    args = ref_idc.IDCArgs(ipc=IPC, factor=2, inner_loop=2, batch_real=16, n_data=32, mixup_net="vanilla",
                           metric=cfg.metric)
    none = ref_idc.Normalized(digits.mean, digits.std, ref_idc.DiffAug("", batch=True))
    loader = _ReplayLoader(pool, g_real, g_train, 32, 16, mean, std)
    loss = ref_idc.idc_iteration(args, model, synset, torch.arange(10).repeat_interleave(IPC), opt, loader,
                                 none, none, 10)
    assert ours.metadata["matching_loss"][0] == pytest.approx(loss, rel=1e-3)
    assert torch.allclose(ours.images, (synset.detach() - mean) / std, atol=1e-4)


def test_mtt_step_equal_work(digits):
    """MTT: the same student minibatches, no DSA: the same loss and gradients to images and lr."""
    from baselines.mtt import StudentStep, trajectory_gradients
    from baselines.mtt_experts import ParamLayout

    torch.manual_seed(0)
    layout = ParamLayout(create_model("convnet", 1, 10, 8))
    start = layout.flatten()
    target = start + 0.01 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    idx = torch.cat([ix[:IPC] for ix in digits.train.indices_by_class])
    images, labels = digits.train.get(idx), digits.train.labels[idx]
    batches = [torch.randperm(len(images), generator=torch.Generator().manual_seed(s))[:5] for s in range(4)]
    res = trajectory_gradients(layout.forward, start, target, images.clone().requires_grad_(True), labels,
                               torch.tensor(0.01), [StudentStep(b) for b in batches], None, "unrolled")
    x = images.clone().requires_grad_(True)
    lr = torch.tensor(0.01).requires_grad_(True)
    opts = torch.optim.SGD([x], lr=0.0), torch.optim.SGD([lr], lr=0.0)  # lr 0: the gradients stay inspectable
    loss = ref_mtt.student_run(reference_factory(digits), x, lr, labels, start, target, 4, 5, "",
                               *opts, batches=batches)
    assert res.loss == pytest.approx(loss, rel=1e-5)
    assert torch.allclose(res.grad_images, x.grad, rtol=1e-4, atol=1e-7)
    assert float(res.grad_lr) == pytest.approx(float(lr.grad), rel=1e-4)
    assert x.grad.abs().sum() > 0


@pytest.mark.slow  # ~1 CPU-minute for dc/dsa: `nox -s bench -- -m "not slow"` leaves it out
@pytest.mark.parametrize("method", ["dc", "dsa", "dm", "idc", "mtt"])
def test_against_reference(request, digits, method, capsys):
    """Timed (``nox -s bench -- -k reference``): ours vs the reference step, alternating, CPU seconds.
    Its own alternating timer, not pytest-benchmark's, so it leaves no entry in the perf baseline."""
    session = getattr(request.config, "_benchmarksession", None)
    if session is None or session.disabled:
        pytest.skip("the reference comparison is timed only by `nox -s bench` / compare_references.py")
    from compare_references import format_rows, time_case
    from reference_steps.cases import build_cases

    row = time_case(build_cases(digits, (method,))[method], rounds=5)
    with capsys.disabled():
        print("\n" + "\n".join(format_rows([row])))
    assert row.ours_s > 0 and row.reference_s > 0
