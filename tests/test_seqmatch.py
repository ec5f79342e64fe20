"""SeqMatch's mechanics in ``seq``/``dasm`` with base IDC (shqii1j/seqmatch, seqmatch-idc/condense_new.py).

Each test spies on what the code hands on (networks, batches, splits) at a tiny digits budget.
Select them with ``pytest -k seqmatch``.
"""

from __future__ import annotations

import pytest
import torch

import baselines.idc as idc_module
import dasm.seqmatch as seqmatch
import dasm.sequential_matching as sm
from baselines.idc import IDCConfig
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, SegmentHooks, distill
from bench.store.synthetic import SyntheticSet
from dasm.hard_only import HardOnlyConfig
from dasm.segment_schedule import default_schedule
from dasm.seqmatch import segment_budget

# one class round per iteration, 3 iterations per segment, small batches; short, augmentation-free
# models for the warm-up and the checkpoint scores
IDC_TINY = {"iterations": 3, "inner_loop": 1, "batch_real": 8, "n_data": 16}
SEQ_TINY = {"base": "idc", "base_overrides": IDC_TINY, "difficulty_epochs": 2, "real_ranking_epochs": 1,
            "difficulty_protocol": "dc-nodsa", "fix_iter": 2, "checkpoint_every": 1,
            "inner_loop_scales": "1", "niter_scales": "1"}


def _first_weight(net: torch.nn.Module) -> torch.Tensor:
    return next(net.parameters()).detach().clone()


@pytest.fixture
def spies(monkeypatch):
    """Records the warm-up networks (and what they trained on), the network at every class match,
    the synthetic batch sizes of the matches and the net-update batches."""
    log = {"warm": [], "warm_images": [], "match": [], "syn_sizes": [], "update": [], "in_warm_up": False}
    real_segment_hooks = sm.segment_hooks
    real_train = seqmatch.train_network

    def hooks_spy(*args, **kwargs):
        hooks = real_segment_hooks(*args, **kwargs)
        original = hooks.warm_up

        def warm_up(net, seed):
            log["in_warm_up"] = True
            original(net, seed)
            log["in_warm_up"] = False
            log["warm"].append(_first_weight(net))

        hooks.warm_up = warm_up
        return hooks

    def train_spy(model, images, labels, *args, **kwargs):
        if log["in_warm_up"]:
            log["warm_images"].append(images.detach().clone())
        return real_train(model, images, labels, *args, **kwargs)

    real_match = idc_module.class_matching_loss

    def match_spy(net, params, x_real, y_real, x_syn, y_syn, metric):
        log["match"].append(_first_weight(net))
        log["syn_sizes"].append(len(x_syn))
        return real_match(net, params, x_real, y_real, x_syn, y_syn, metric)

    real_update = idc_module.train_on_tensors

    def update_spy(net, opt, images, labels, *args, **kwargs):
        log["update"].append(images.detach().clone())
        return real_update(net, opt, images, labels, *args, **kwargs)

    monkeypatch.setattr(sm, "segment_hooks", hooks_spy)
    monkeypatch.setattr(seqmatch, "train_network", train_spy)
    monkeypatch.setattr(idc_module, "class_matching_loss", match_spy)
    monkeypatch.setattr(idc_module, "train_on_tensors", update_spy)
    return log


def test_seqmatch_network_for_segment_2_is_trained_on_segment_1_images(digits, spies):
    syn = distill("seq", DistillRequest(digits, ipc=2, seed=0, progress=False), overrides=SEQ_TINY)
    n_cls = digits.num_classes
    # 3 iterations, fix_iter 2: starts at iterations 0 and 2 in each segment
    assert len(spies["warm"]) == 4
    # segment 2's starting networks trained on segment 1's (decoded) images, exactly those
    seg1_images, _ = SyntheticSet(syn.images[syn.segment_ids == 0], syn.labels[syn.segment_ids == 0]).decode()
    assert spies["warm_images"] and all(torch.equal(x.cpu(), seg1_images) for x in spies["warm_images"])
    # segment 1 has no earlier segment: its starting networks are not trained at all
    assert len(spies["warm_images"]) == 2
    # every iteration's first match uses (a copy of) the current start, not the net the previous
    # iteration updated: iterations 0, 1 -> start 0; iteration 2 -> start 1 (per segment)
    firsts = spies["match"][::n_cls]
    assert len(firsts) == 6
    for it, start in zip(range(6), [0, 0, 1, 2, 2, 3]):
        assert torch.equal(firsts[it], spies["warm"][start]), it
    assert not torch.equal(spies["warm"][2], spies["warm"][3])  # a fresh network every fix_iter
    meta = syn.metadata["dasm"]["segments"][1]
    assert meta["seqmatch"] and meta["base_metadata"]["seqmatch"]["fix_iter"] == 2


def test_seqmatch_network_update_uses_real_images_only(digits, spies):
    distill("dasm", DistillRequest(digits, ipc=2, seed=1, progress=False), overrides=SEQ_TINY)
    real = digits.train.images.flatten(1)
    assert len(spies["update"]) == 6  # one per inner loop, both segments
    for batch in spies["update"]:
        assert len(batch) == IDC_TINY["n_data"]  # no frozen images appended
        # every image of the batch is a real training image (normalised digits, exact copies)
        assert (batch.flatten(1).cpu()[:, None, :] == real[None]).all(-1).any(1).all()


def test_seqmatch_decoded_image_cap_applies_to_each_segment(digits, spies):
    frozen = distill("random", DistillRequest(digits, ipc=6, seed=0, progress=False))
    frozen = SyntheticSet(frozen.images, frozen.labels, segment_ids=torch.tensor([0, 0, 0, 1, 1, 1] * 10))
    order = torch.argsort(frozen.labels, stable=True)
    frozen = SyntheticSet(frozen.images[order], frozen.labels[order], segment_ids=frozen.segment_ids)
    distill("idc", DistillRequest(digits, ipc=3, seed=0, progress=False, frozen=frozen, segment=2),
            overrides={**IDC_TINY, "iterations": 1, "batch_syn_max": 2})
    # two earlier segments (3 per class each) and the current one (3): 2 + 2 + 2, not 2 in all
    assert spies["syn_sizes"] == [6] * digits.num_classes


def test_seqmatch_checkpoint_is_the_best_scored_candidate(digits):
    scores = iter([1.0, 3.0, 2.0, 3.0])
    seen: list[SyntheticSet] = []

    def score(candidate: SyntheticSet) -> float:
        seen.append(candidate)
        return next(scores)

    hooks = SegmentHooks(warm_up=lambda net, seed: None, score=score, score_every=1)
    syn = distill("idc", DistillRequest(digits, ipc=1, seed=0, progress=False, hooks=hooks),
                  overrides={**IDC_TINY, "iterations": 4, "lr_img": 5.0})
    assert [r["iteration"] for r in syn.metadata["seqmatch"]["checkpoints"]] == [1, 2, 3, 4]
    assert syn.metadata["seqmatch"]["chosen_iteration"] == 2  # the first best (strict >, as SeqMatch)
    assert torch.equal(syn.images, seen[1].images) and not torch.equal(seen[1].images, seen[3].images)


def test_seqmatch_checkpoint_scores_use_the_validation_split(digits, monkeypatch):
    splits = []
    real_accuracy = seqmatch.accuracy

    def accuracy_spy(model, split, device, *args, **kwargs):
        splits.append(split)
        return real_accuracy(model, split, device, *args, **kwargs)

    monkeypatch.setattr(seqmatch, "accuracy", accuracy_spy)
    syn = distill("seq", DistillRequest(digits, ipc=2, seed=0, progress=False), overrides=SEQ_TINY)
    assert len(splits) == 6 and all(s is digits.val for s in splits)  # 3 candidates per segment
    for rec in syn.metadata["dasm"]["segments"]:
        chosen = rec["base_metadata"]["seqmatch"]
        assert len(chosen["checkpoints"]) == 3 and 1 <= chosen["chosen_iteration"] <= 3


def test_seqmatch_per_segment_budgets_follow_run_sh(digits):
    # run.sh: --inner_loop=[50,100] --niters=[2000,4000], n_iter = niter * 100 // inner_loop
    first = segment_budget(IDCConfig(), 1, "0.5,1", "1,2", 50)
    second = segment_budget(IDCConfig(), 2, "0.5,1", "1,2", 50)
    assert (first.inner_loop, first.iterations, first.fix_iter) == (50, 4000, 50)
    assert (second.inner_loop, second.iterations) == (100, 4000)
    assert segment_budget(IDCConfig(), 3, "0.5,1", "1,2", 50).iterations == 4000  # the last scale repeats
    syn = distill("dasm", DistillRequest(digits, ipc=2, seed=0, progress=False),
                  overrides={**SEQ_TINY, "base_overrides": {**IDC_TINY, "iterations": 1, "inner_loop": 2},
                             "inner_loop_scales": "0.5,1", "niter_scales": "1,2", "checkpoint_every": 2})
    budgets = [r["base_budget"] for r in syn.metadata["dasm"]["segments"]]
    assert budgets == [{"iterations": 2, "inner_loop": 1, "fix_iter": 2},
                       {"iterations": 2, "inner_loop": 2, "fix_iter": 2}]


def test_seqmatch_mtt_base_is_refused_for_later_segments(digits):
    with pytest.raises(BenchError, match="buffer.py"):
        distill("seq", DistillRequest(digits, ipc=2, seed=0, progress=False), overrides={"base": "mtt"})


def test_seqmatch_hard_only_drops_the_share_of_dasm_last_window():
    assert HardOnlyConfig().drop_fraction == default_schedule(10, 2).windows[-1][0] == 0.25


def test_seqmatch_selection_holds_val_out_of_the_full_split():
    """Under the full training split val is inside train: a sequential matcher that chooses
    checkpoints on val must not match against those images, and its set says which split it used."""
    from bench.data.datasets import load_dataset
    from bench.methods.registry import DistillRequest
    from dasm.sequential_matching import DASMConfig, held_out_request

    full = load_dataset("digits", train_split="full")
    assert full.train_split == "full" and len(full.train) > len(full.holdout_view().train)
    request = DistillRequest(full, ipc=2, seed=0)
    held = held_out_request(request, DASMConfig(base="idc"))
    assert held.data.train_split == "train-val"
    val = {tuple(x.flatten().tolist()) for x in held.data.val.images}
    assert not any(tuple(x.flatten().tolist()) in val for x in held.data.train.images)
    # bases without checkpoint selection keep the split they were given
    assert held_out_request(request, DASMConfig(base="dm")).data is full
