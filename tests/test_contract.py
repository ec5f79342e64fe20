"""The contract every registered method keeps (timm's registry-wide model tests, for distillers).

Parametrised over the registry (every method a built-in package registers, not a hand-written
list), on the embedded digits set at a tiny budget: a method

- returns ``ipc x classes`` images of the dataset's shape, float32, with ``ipc`` hard labels per
  class, and the registry's metadata stamp;
- is deterministic for a seed (two runs are bit-identical);
- round-trips through the synthetic-set file (``save`` / ``load``);
- honours ``pool``: with the real training images OUTSIDE the pool replaced by noise, the result
  is bit-identical (it never looked at them);
- honours ``frozen``: the frozen set is left untouched, only the ``ipc`` new images per class are
  returned, and every method that trains on synthetic data (not a coreset) is changed by it;
- refuses a setting it has no reference values for (``no_reference``) with one line, before work.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.data.datasets import Dataset, ImageSet
from bench.errors import BenchError
from bench.methods.index import BUILTIN_PACKAGES
from bench.methods.registry import DistillRequest, default_config, distill, list_methods
from bench.store.synthetic import SyntheticSet

IPC = 2

# A budget of seconds per run on one core. A new built-in method fails test_every_method_has_a_budget
# until it is given one here.
TINY: dict[str, dict] = {
    "random": {},
    "herding": {"epochs": 1},
    "kcenter": {"epochs": 1},
    "forgetting": {"epochs": 2},
    "dc": {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "batch_real": 8},
    "dsa": {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "batch_real": 8},
    "dm": {"iterations": 2, "batch_real": 8},
    "idc": {"iterations": 1, "inner_loop": 1, "batch_real": 8, "n_data": 16, "net_batch": 16},
    "mtt": {"iterations": 1, "syn_steps": 2, "expert_epochs": 1, "min_start_epoch": 0, "max_start_epoch": 1,
            "num_experts": 1, "train_epochs": 1},
    # DASM and its ablations over a cheap base (DM): the sequential mechanics are what is checked
    "dasm": {"base": "dm", "base_overrides": "iterations=1;batch_real=8", "segments": 2,
             "difficulty_epochs": 1, "real_ranking_epochs": 1},
    "seq": {"base": "dm", "base_overrides": "iterations=1;batch_real=8", "segments": 2,
            "difficulty_epochs": 1, "real_ranking_epochs": 1},
    "dasm-reverse": {"base": "dm", "base_overrides": "iterations=1;batch_real=8", "segments": 2,
                     "difficulty_epochs": 1, "real_ranking_epochs": 1},
    "hard-only": {"base": "dm", "base_overrides": "iterations=1;batch_real=8", "real_ranking_epochs": 1},
    # the shipped tuned schedule (scaled to the test's IPC) over the cheap base: with its own base
    # (IDC, SeqMatch's checkpoint choice) a pool must index train-val, which the pool test does not
    "dasm-tuned": {"base": "dm", "base_overrides": "iterations=1;batch_real=8", "difficulty_epochs": 1,
                   "real_ranking_epochs": 1},
}

# Methods that, by their reference's design, read real images outside the pool. MTT trains its
# experts on the whole training split (GeorgeCazenavette/mtt-distillation buffer.py); only its
# initial images come from the pool, which test_pool_is_honoured checks for it instead.
USES_WHOLE_SPLIT = {"mtt"}


def _builtin_methods() -> list[str]:
    return sorted(name for name, spec in list_methods().items()
                  if spec.fn.__module__.split(".")[0] in BUILTIN_PACKAGES)


METHODS = _builtin_methods()


@pytest.fixture(scope="module")
def buffers(tmp_path_factory):
    return tmp_path_factory.mktemp("contract_mtt_buffers")


def _overrides(method: str, buffers, **extra) -> dict:
    out = dict(TINY[method])
    if "buffer_dir" in {f.name for f in dataclasses.fields(default_config(method, "digits", IPC))}:
        out["buffer_dir"] = str(buffers)
    return {**out, **extra}


def _run(method: str, data: Dataset, buffers, seed: int = 0, **request) -> SyntheticSet:
    req = DistillRequest(data, ipc=IPC, seed=seed, progress=False, **request)
    return distill(method, req, overrides=_overrides(method, buffers))


_PLAIN: dict[str, SyntheticSet] = {}


def _plain_run(method: str, data: Dataset, buffers) -> SyntheticSet:
    """The method's set at seed 3 with no pool and no frozen images, computed once per session
    (the reference the frozen test compares with)."""
    if method not in _PLAIN:
        _PLAIN[method] = _run(method, data, buffers, seed=3)
    return _PLAIN[method]


def _pool(data: Dataset) -> list[torch.Tensor]:
    # every other image of each class: large enough for every init, small enough to matter
    return [ix[::2] for ix in data.train.indices_by_class]


def _outside_pool_replaced(data: Dataset, pool: list[torch.Tensor]) -> Dataset:
    """``data`` with every training image outside ``pool`` replaced by seeded noise (labels kept)."""
    raw = data.train.data.clone()
    keep = torch.zeros(len(raw), dtype=torch.bool)
    keep[torch.cat(pool)] = True
    g = torch.Generator().manual_seed(123)
    noise = torch.rand(raw[~keep].shape, generator=g)
    raw[~keep] = (noise * 255).to(raw.dtype) if raw.dtype == torch.uint8 else noise.to(raw.dtype)
    train = ImageSet(raw, data.train.labels, data.num_classes, data.mean, data.std)
    return dataclasses.replace(data, train=train, _holdout=None)


def test_every_method_has_a_budget():
    assert METHODS, "no method registered"
    missing = [m for m in METHODS if m not in TINY]
    assert not missing, f"give {missing} a tiny budget in tests/test_contract.py TINY"


@pytest.mark.parametrize("method", METHODS)
def test_shape_labels_determinism_and_round_trip(method, digits, buffers, tmp_path):
    syn = _plain_run(method, digits, buffers)
    n = IPC * digits.num_classes
    assert len(syn) == n
    assert syn.images.dtype == torch.float32
    assert tuple(syn.images.shape) == (n, digits.channels, digits.image_size, digits.image_size)
    assert torch.isfinite(syn.images).all()
    # hard labels, ipc per class (class-major within a segment; DASM's segments come one after another)
    assert syn.labels.ndim == 1 and torch.bincount(syn.labels, minlength=10).tolist() == [IPC] * 10
    x, y = syn.decode()  # what an evaluation trains on: factor^2 images per stored image
    assert tuple(x.shape[1:]) == (digits.channels, digits.image_size, digits.image_size)
    assert len(x) == n * syn.factor ** 2 and torch.bincount(y, minlength=10).tolist() == [len(x) // 10] * 10
    assert syn.metadata["method"] == method and len(syn.metadata["config_hash"]) == 16

    again = _run(method, digits, buffers, seed=3)
    assert torch.equal(syn.images, again.images) and torch.equal(syn.labels, again.labels)
    assert syn.metadata["config_hash"] == again.metadata["config_hash"]

    loaded = SyntheticSet.load(syn.save(tmp_path / f"{method}.safetensors"))
    assert torch.equal(loaded.images, syn.images) and torch.equal(loaded.labels, syn.labels)
    assert loaded.factor == syn.factor and torch.equal(loaded.segment_ids, syn.segment_ids)
    assert loaded.metadata["config_hash"] == syn.metadata["config_hash"]
    assert loaded.metadata["config"] == syn.metadata["config"]


@pytest.mark.parametrize("method", METHODS)
def test_pool_is_honoured(method, digits, buffers):
    pool = _pool(digits)
    if method in USES_WHOLE_SPLIT:
        # its start images are pool images; with no update they are what it returns
        req = DistillRequest(digits, ipc=IPC, seed=1, progress=False, pool=pool)
        syn = distill(method, req, overrides=_overrides(method, buffers, iterations=0, init="real"))
        for image, label in zip(syn.images, syn.labels):
            members = digits.train.get(pool[int(label)])
            assert (members == image).flatten(1).all(1).any(), "an initial image is not from its class's pool"
        return
    clean = _run(method, digits, buffers, seed=1, pool=pool)
    blind = _run(method, _outside_pool_replaced(digits, pool), buffers, seed=1, pool=pool)
    assert torch.equal(clean.images, blind.images), "the result depends on real images outside the pool"
    if "selected_indices" in clean.metadata:
        assert set(clean.metadata["selected_indices"]) <= set(torch.cat(pool).tolist())


@pytest.mark.parametrize("method", METHODS)
def test_frozen_is_honoured(method, digits, buffers):
    frozen = distill("random", DistillRequest(digits, ipc=1, seed=9, progress=False))
    before = (frozen.images.clone(), frozen.labels.clone(), dict(frozen.metadata))
    with_frozen = _run(method, digits, buffers, seed=3, frozen=frozen)
    assert torch.equal(frozen.images, before[0]) and torch.equal(frozen.labels, before[1])
    assert frozen.metadata == before[2]
    assert len(with_frozen) == IPC * digits.num_classes  # only the new images come back
    if list_methods()[method].kind != "coreset":  # coresets select real images and ignore frozen sets
        alone = _plain_run(method, digits, buffers)  # the same request without the frozen set
        assert not torch.equal(alone.images, with_frozen.images), "the frozen images took no part"


def _refused_settings() -> list[tuple[str, str, int]]:
    # every (method, dataset, ipc) whose default config carries a no_reference reason
    out = []
    for method in METHODS:
        for dataset in ("cifar10", "cifar100"):
            for ipc in (1, 10, 50, 100, 200, 500, 1000):
                if getattr(default_config(method, dataset, ipc), "no_reference", ""):
                    out.append((method, dataset, ipc))
    return out


def _fake(name: str, classes: int, per_class: int) -> Dataset:
    """A stand-in for a paper-scale dataset: the right name and shape, no pixels (a broadcast view)."""
    n = classes * per_class
    images = torch.zeros(1, 3, 32, 32, dtype=torch.uint8).expand(n, 3, 32, 32)
    labels = torch.arange(classes).repeat_interleave(per_class)
    split = ImageSet(images, labels, classes, (0.5,) * 3, (0.25,) * 3)
    return Dataset(name, split, split, split, [str(c) for c in range(classes)], 3, 32, (0.5,) * 3, (0.25,) * 3)


def test_some_setting_is_refused():
    assert _refused_settings(), "no method refuses any paper-scale setting: the refusal test checks nothing"


@pytest.mark.parametrize("method,dataset,ipc", _refused_settings())
def test_settings_without_reference_values_are_refused_cleanly(method, dataset, ipc, monkeypatch):
    spec = list_methods()[method]
    monkeypatch.setattr(spec, "fn", lambda request, config: pytest.fail("ran a refused setting"))
    data = _fake(dataset, 100 if dataset == "cifar100" else 10, ipc)
    with pytest.raises(BenchError) as err:
        distill(method, DistillRequest(data, ipc=ipc, seed=0, progress=False))
    message = str(err.value)
    assert "\n" not in message and str(ipc) in message and dataset in message
