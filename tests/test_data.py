import numpy as np
import pytest
import torch

from bench.data.datasets import list_datasets, load_dataset, stratified_split
from bench.errors import BenchError


def test_digits_splits_are_disjoint_stratified_and_complete():
    digits = load_dataset("digits", train_split="train-val")
    total = len(digits.train) + len(digits.val) + len(digits.test)
    assert total == 1797
    assert digits.channels == 1 and digits.image_size == 8 and digits.num_classes == 10
    # stratified: every class keeps about the same share in each split
    for split in (digits.train, digits.val, digits.test):
        counts = np.array(split.class_counts())
        assert counts.min() > 0 and counts.max() - counts.min() <= max(3, 0.1 * counts.mean())
    # disjoint: no image of val or test appears in train (digits has a few exact duplicates, so compare sets loosely)
    train_rows = {tuple(r) for r in digits.train.data.flatten(1).numpy().round(4)}
    test_rows = [tuple(r) for r in digits.test.data.flatten(1).numpy().round(4)]
    assert sum(r in train_rows for r in test_rows) < 0.05 * len(test_rows)


def test_split_is_fixed_across_loads(digits):
    from bench.data.datasets import load_digits

    again = load_digits()
    assert torch.equal(again.test.data, digits.test.data)
    assert torch.equal(again.val.labels, digits.val.labels)


def test_normalisation_and_per_class_indices(digits):
    x = digits.train.images
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-2
    for c, idx in enumerate(digits.train.indices_by_class):
        assert (digits.train.labels[idx] == c).all()
    assert torch.allclose(digits.train.get([0, 5]), x[[0, 5]])
    assert torch.allclose(digits.denormalise(x[:3]), digits.train.data[:3], atol=1e-5)


def test_stratified_split_holds_out_fraction_per_class():
    labels = np.repeat(np.arange(4), 20)
    rest, held = stratified_split(labels, 0.25, seed=1)
    assert len(set(rest) & set(held)) == 0 and len(rest) + len(held) == 80
    assert np.bincount(labels[held]).tolist() == [5, 5, 5, 5]


def test_mnist5k_embedded():
    data = load_dataset("mnist5k")
    assert data.image_size == 28 and data.channels == 1
    assert len(data.train) + len(data.test) == 5000  # "full": val is part of train
    assert min(data.train.class_counts()) >= 300


def test_check_ipc_and_unknown_dataset(digits):
    with pytest.raises(BenchError, match="positive"):
        digits.check_ipc(0)
    with pytest.raises(BenchError, match="smallest class"):
        digits.check_ipc(digits.smallest_class_size() + 1)
    digits.check_ipc(digits.smallest_class_size())
    with pytest.raises(BenchError, match="did you mean digits"):
        load_dataset("digit")
    assert {"digits", "mnist5k", "cifar10", "mnist"} <= set(list_datasets())


def test_full_training_split_is_the_whole_training_set_and_the_test_split_is_fixed():
    # the references distill, train experts, fit ZCA and train full-data models on the WHOLE
    # training set; the validation hold-out exists only for tuning
    full = load_dataset("digits")
    held = load_dataset("digits", train_split="train-val")
    assert full.train_split == "full" and held.train_split == "train-val"
    assert len(full.train) == len(held.train) + len(held.val) == 1797 - len(full.test)
    assert torch.equal(full.test.data, held.test.data) and torch.equal(full.val.data, held.val.data)
    rows = {tuple(r) for r in full.train.data.flatten(1).numpy().round(5)}
    assert all(tuple(r) in rows for r in held.val.data.flatten(1).numpy().round(5))  # val is inside "full"
    assert full.holdout_view() is held and held.holdout_view() is held
    assert torch.equal(full.train.images[:len(held.train)], held.train.images)  # same normalisation
    with pytest.raises(BenchError, match="unknown training split"):
        load_dataset("digits", train_split="everything")
