"""DASM: schedules, difficulty windows, the sequential loop and its ablations (fast, digits, tiny budgets).

The pool tests replace the ranking model and its losses with known values (monkeypatch) and
recompute every expected window here, independently of ``dasm.difficulty``; the base matcher is
a recording fake registered for the test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import dasm.sequential_matching as sm
from bench.cli.main import main as cli_main
from bench.errors import BenchError
from bench.methods import registry
from bench.methods.registry import DistillRequest, distill, get_method
from bench.store.synthetic import SyntheticSet
from dasm.difficulty import class_quantiles, window_pool
from dasm.segment_schedule import SegmentSchedule, default_schedule, equal_sizes
from dasm.sequential_matching import DASMConfig, run_sequential

# fast settings for real ranking models in tests: no augmentation, a couple of epochs
FAST = {"difficulty_epochs": 2, "real_ranking_epochs": 1, "difficulty_protocol": "dc-nodsa"}


# ----------------------------------------------------------------------------- helpers

def expected_window(scores: torch.Tensor, labels: torch.Tensor, c: int, lo: float, hi: float) -> list[int]:
    """Independent recomputation: rank class c by (score, index), q = rank/(n-1), keep lo <= q <= hi."""
    idx = [i for i in range(len(labels)) if int(labels[i]) == c]
    ordered = sorted(idx, key=lambda i: (float(scores[i]), i))
    n = len(ordered)
    keep = [i for r, i in enumerate(ordered) if lo <= r / (n - 1) <= hi]
    return sorted(keep)


@dataclass
class RecorderConfig:
    note: str = ""


@pytest.fixture
def recorder():
    """A fake base matcher: records each request and returns the first ``ipc`` pool images per class."""
    calls: list[dict] = []

    def fake_base(request: DistillRequest, config: RecorderConfig) -> SyntheticSet:
        pools = [request.pool_indices(c).clone() for c in range(request.data.num_classes)]
        idx = torch.cat([p[: request.ipc] for p in pools])
        out = SyntheticSet(request.data.train.get(idx), request.data.train.labels[idx].clone())
        calls.append({"pool": None if request.pool is None else pools, "frozen": request.frozen,
                      "seed": request.seed, "ipc": request.ipc, "segment": request.segment,
                      "output": out.images.clone()})
        return out

    registry.register_method("_recorder", RecorderConfig, kind="coreset")(fake_base)
    yield calls
    registry._METHODS.pop("_recorder", None)


@pytest.fixture
def known_ranking(monkeypatch):
    """Replace the ranking model with a tiny linear net and its losses with seeded random scores;
    records what each model was trained on and the scores it produced."""
    log = {"trained_on": [], "scores": []}

    def fake_train(images, labels, data, arch, protocol, seed, device="cpu"):
        log["trained_on"].append((images.clone(), labels.clone()))
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(data.channels * data.image_size ** 2, data.num_classes))

    def fake_scores(model, data, device="cpu", batch_size=1024):
        g = torch.Generator().manual_seed(100 + len(log["scores"]))
        scores = torch.rand(len(data.train), generator=g, dtype=torch.float64)
        scores[::7] = 0.5  # ties: the rule must break them by index
        log["scores"].append(scores)
        return scores

    monkeypatch.setattr(sm, "train_ranking_model", fake_train)
    monkeypatch.setattr(sm, "difficulty_scores", fake_scores)
    return log


# ----------------------------------------------------------------------------- schedules

@pytest.mark.parametrize("ipc,k", [(1, 2), (2, 2), (10, 2), (10, 3), (7, 4), (50, 2), (3, 5)])
def test_default_schedule_sizes_sum_to_ipc_and_difficulty_grows(ipc, k):
    s = default_schedule(ipc, k)
    assert sum(s.sizes) == ipc and s.num_segments == min(k, ipc) and min(s.sizes) >= 1
    assert max(s.sizes) - min(s.sizes) <= 1
    assert s.windows[0] == (0.0, 1.0)  # segment 1 sees all real data
    los = [lo for lo, _ in s.windows]
    assert los == sorted(los) and all(hi == 1.0 for _, hi in s.windows) and los[-1] <= 0.5
    s.check_ipc(ipc)


def test_schedule_string_and_dict_round_trip():
    s = SegmentSchedule.parse("5@0-1, 3@0.25-1,2@0.5-0.9")
    assert s.sizes == (5, 3, 2) and s.windows == ((0.0, 1.0), (0.25, 1.0), (0.5, 0.9))
    assert SegmentSchedule.parse(s.to_string()) == s == SegmentSchedule.from_dict(s.to_dict())
    assert SegmentSchedule.parse("4,4").windows == ((0.0, 1.0), (0.0, 1.0))
    assert default_schedule(10, 2).to_string() == "5@0-1,5@0.25-1"
    for k in (3, 6, 7):
        assert SegmentSchedule.parse(default_schedule(50, k).to_string()) == default_schedule(50, k)
    assert equal_sizes(10, 3) == (4, 3, 3)


def test_reversed_mirrors_windows_and_full_windows_clears_them():
    s = SegmentSchedule((2, 2, 2), ((0.0, 1.0), (0.2, 1.0), (0.4, 0.9)))
    assert s.reversed().windows == ((0.0, 1.0), (0.0, 0.8), (pytest.approx(0.1), pytest.approx(0.6)))
    assert s.reversed().sizes == s.sizes
    assert s.full_windows().windows == ((0.0, 1.0),) * 3


@pytest.mark.parametrize("make,message", [
    (lambda: SegmentSchedule.parse("5@0-1,4@0.5-1").check_ipc(10), "do not sum to IPC 10"),
    (lambda: SegmentSchedule.parse("0@0-1,10@0.5-1"), "size 0"),
    (lambda: SegmentSchedule.parse("5@0-1,5@0.5-1.5"), "outside"),
    (lambda: SegmentSchedule.parse("5@0-1,5@0.5-0.5"), "empty"),
    (lambda: SegmentSchedule.parse("5@0-1,5@0.7-0.2"), "empty"),
    (lambda: SegmentSchedule.parse("1@0-1,1@0-1,1@0-1").check_ipc(2), "K must be <= IPC"),
    (lambda: SegmentSchedule((5, 5), ((0.0, 1.0),)), "2 segment sizes but 1 windows"),
    (lambda: SegmentSchedule.parse("5@0:1"), "bad schedule item"),
    (lambda: SegmentSchedule.parse(" , "), "empty schedule"),
    (lambda: SegmentSchedule.from_dict({"sizes": [1]}), "not a segment schedule"),
])
def test_invalid_schedules_give_one_line_errors(make, message):
    with pytest.raises(BenchError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_bad_configs_give_one_line_errors(digits):
    req = DistillRequest(digits, ipc=10, seed=0, progress=False)
    for overrides, message in [({"base": "random", "schedule": "5@0-1,4@0.5-1"}, "do not sum to IPC 10"),
                               ({"base": "dasm"}, "itself a DASM variant"),
                               ({"base": "nope"}, "unknown method"),
                               ({"base": "random", "base_overrides": "iterations=3"}, "not in RandomConfig"),
                               ({"base": "random", "base_overrides": "iterations"}, "key=value"),
                               ({"base": "random", "segments": 0}, "segments must be >= 1"),
                               ({"base": "random", "window_shift": 1.0}, "window_shift")]:
        with pytest.raises(BenchError, match=message) as err:
            distill("dasm", req, overrides=overrides)
        assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------- difficulty ranking

def test_class_quantiles_and_window_boundaries():
    scores = torch.tensor([0.3, 0.1, 0.9, 0.5, 0.2, 0.7, 0.1], dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    q = class_quantiles(scores, labels, 2)
    # class 0 losses 0.3 0.1 0.9 0.5 0.2 -> ranks 2 0 4 3 1; class 1: 0.7 > 0.1
    assert q.tolist() == [0.5, 0.0, 1.0, 0.75, 0.25, 1.0, 0.0]
    pools = window_pool(q, labels, (0.25, 0.75), 2)  # closed interval: 0.25 and 0.75 are in
    assert pools[0].tolist() == [0, 3, 4]
    assert pools[1].tolist() == [5]  # empty window: the image nearest the centre (tie: first) is kept
    narrow = window_pool(q, labels, (0.85, 0.95), 2)  # no class-0 rank in it: nearest to 0.9 is q=1.0
    assert narrow[0].tolist() == [2] and len(narrow[1]) == 1
    assert window_pool(q, labels, (0.76, 0.84), 2)[0].tolist() == [3]  # nearest to 0.8 is q=0.75
    tied = class_quantiles(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0, 0, 0]), 1)
    assert tied.tolist() == [0.0, 0.5, 1.0]  # ties broken by index
    allowed = class_quantiles(scores, labels, 2, allowed=[torch.tensor([0, 2]), torch.tensor([6])])
    assert allowed[0] == 0.0 and allowed[2] == 1.0 and allowed[6] == 0.5 and torch.isnan(allowed[1])


# ----------------------------------------------------------------------------- the sequential loop

def test_each_pool_is_the_window_of_the_ranking_from_earlier_segments(digits, recorder, known_ranking):
    schedule = "1@0-1,2@0.25-1,1@0.5-0.9"
    syn = distill("dasm", DistillRequest(digits, ipc=4, seed=3, progress=False),
                  overrides={"base": "_recorder", "schedule": schedule})
    windows = SegmentSchedule.parse(schedule).windows
    assert [c["ipc"] for c in recorder] == [1, 2, 1]
    assert recorder[0]["pool"] is None  # segment 1, window [0, 1]: the base's own request
    labels = digits.train.labels
    for k in (2, 3):
        scores = known_ranking["scores"][k - 2]  # losses under the model trained on segments 1..k-1
        lo, hi = windows[k - 1]
        for c in range(digits.num_classes):
            assert recorder[k - 1]["pool"][c].tolist() == expected_window(scores, labels, c, lo, hi)
    # ranking model k was trained on exactly the decoded segments 1..k
    for k, (images, y) in enumerate(known_ranking["trained_on"], 1):
        prefix = torch.cat([c["output"] for c in recorder[:k]])
        assert torch.equal(images, prefix) and len(y) == len(prefix)
    assert syn.segment_ids.tolist() == [0] * 10 + [1] * 20 + [2] * 10
    assert syn.labels.tolist() == list(range(10)) + [c for c in range(10) for _ in range(2)] + list(range(10))
    meta = syn.metadata["dasm"]
    assert meta["schedule"] == schedule.replace(" ", "")
    assert [r["window"] for r in meta["segments"]] == [list(w) for w in windows]
    assert meta["segments"][0]["pool_mean_loss"] is None
    s1 = known_ranking["scores"][0]
    pool2 = torch.cat(recorder[1]["pool"])
    assert meta["segments"][1]["pool_mean_loss"] == pytest.approx(float(s1[pool2].mean()))
    assert meta["segments"][1]["pool_min_per_class"] == min(len(p) for p in recorder[1]["pool"])


def test_frozen_prefix_is_passed_and_earlier_segments_stay_bit_identical(digits, recorder, known_ranking):
    syn = distill("dasm", DistillRequest(digits, ipc=3, seed=5, progress=False),
                  overrides={"base": "_recorder", "schedule": "1@0-1,1@0.3-1,1@0.6-1"})
    assert recorder[0]["frozen"] is None
    for k in (2, 3):
        frozen = recorder[k - 1]["frozen"]
        assert frozen is not None and len(frozen) == (k - 1) * digits.num_classes
        assert torch.equal(frozen.images, torch.cat([c["output"] for c in recorder[:k - 1]]))
        assert frozen.segment_ids.tolist() == [j for j in range(k - 1) for _ in range(10)]
        assert recorder[k - 1]["segment"] == k - 1
    # each segment in the result is exactly what the base returned for it
    for k, call in enumerate(recorder):
        assert torch.equal(syn.images[syn.segment_ids == k], call["output"])
    # segment seeds: the first is the request's, later ones differ
    assert recorder[0]["seed"] == 5 and len({c["seed"] for c in recorder}) == 3


def test_earlier_segments_unchanged_by_a_real_matcher(digits):
    """With DM, segment 1 of a 2-segment run equals DM's own 1-image run bit for bit."""
    dm = {"iterations": 3, "batch_real": 16}
    alone = distill("dm", DistillRequest(digits, ipc=1, seed=2, progress=False), overrides=dm)
    two = distill("dasm", DistillRequest(digits, ipc=2, seed=2, progress=False),
                  overrides={"base": "dm", "base_overrides": "iterations=3;batch_real=16", **FAST})
    assert torch.equal(two.images[two.segment_ids == 0], alone.images)
    assert not torch.equal(two.images[two.segment_ids == 1], alone.images)


@pytest.mark.parametrize("base,base_overrides", [
    ("random", {}),
    ("dm", {"iterations": 3, "batch_real": 16}),
    ("dc", {"iterations": 1, "outer_loop": 2, "inner_loop": 1, "batch_real": 16}),
])
def test_one_segment_is_the_base_matcher_bit_for_bit(digits, base, base_overrides):
    get_method(base)
    ref = distill(base, DistillRequest(digits, ipc=2, seed=7, progress=False), overrides=base_overrides)
    one = distill("dasm", DistillRequest(digits, ipc=2, seed=7, progress=False),
                  overrides={"base": base, "base_overrides": base_overrides, "segments": 1, **FAST})
    assert torch.equal(one.images, ref.images) and torch.equal(one.labels, ref.labels)
    assert one.segment_ids.tolist() == [0] * 20
    assert one.metadata["dasm"]["segments"][0]["base_config_hash"] == ref.metadata["config_hash"]


def test_on_segment_reports_k_times_and_may_raise(digits):
    seen = []
    config = dataclasses.replace(DASMConfig(base="random", segments=3), **FAST)
    syn = run_sequential(DistillRequest(digits, ipc=3, seed=0, progress=False), config,
                         on_segment=lambda k, acc: seen.append((k, acc)))
    assert [k for k, _ in seen] == [1, 2, 3]
    assert all(0.0 <= acc <= 100.0 for _, acc in seen)
    assert [r["val_accuracy"] for r in syn.metadata["dasm"]["segments"]] == [acc for _, acc in seen]

    class Pruned(Exception):
        pass

    def prune(k, acc):
        raise Pruned(k)

    with pytest.raises(Pruned):
        run_sequential(DistillRequest(digits, ipc=3, seed=0, progress=False), config, on_segment=prune)


def test_real_ranking_drives_later_windows_to_harder_images(digits):
    syn = distill("dasm", DistillRequest(digits, ipc=2, seed=0, progress=False),
                  overrides={"base": "random", "schedule": "1@0-1,1@0.5-1", **FAST})
    rec = syn.metadata["dasm"]["segments"][1]
    assert rec["pool_mean_loss"] > rec["all_mean_loss"]  # the upper half of losses is above the mean
    n = len(digits.train)  # the harder half of the training set
    assert 0.44 * n < rec["pool_size"] < 0.55 * n and rec["ranked_by"] == "segments 1..1"


# ----------------------------------------------------------------------------- ablations

def test_seq_uses_full_windows_and_reverse_mirrors(digits, recorder, known_ranking):
    req = lambda: DistillRequest(digits, ipc=3, seed=1, progress=False)  # noqa: E731
    distill("seq", req(), overrides={"base": "_recorder", "segments": 3})
    for call in recorder[1:]:
        assert [p.tolist() for p in call["pool"]] == [ix.tolist() for ix in digits.train.indices_by_class]
    recorder.clear()
    known_ranking["scores"].clear()
    syn = distill("dasm-reverse", req(), overrides={"base": "_recorder", "segments": 3})
    forward = default_schedule(3, 3)
    mirrored = [(1 - hi, 1 - lo) for lo, hi in forward.windows]
    got = [w for r in syn.metadata["dasm"]["segments"] for w in r["window"]]
    assert got == pytest.approx([w for pair in mirrored for w in pair])
    labels = digits.train.labels
    for k in (2, 3):
        lo, hi = mirrored[k - 1]
        for c in range(digits.num_classes):
            assert recorder[k - 1]["pool"][c].tolist() == expected_window(known_ranking["scores"][k - 2],
                                                                          labels, c, lo, hi)
    assert mirrored[1][1] < 1.0  # the reverse drops the HARDEST images, not the easiest


def test_hard_only_pool_excludes_the_easiest_fraction(digits, recorder, known_ranking):
    f = 0.3
    syn = distill("hard-only", DistillRequest(digits, ipc=2, seed=4, progress=False),
                  overrides={"base": "_recorder", "drop_fraction": f})
    assert len(recorder) == 1 and recorder[0]["frozen"] is None and recorder[0]["seed"] == 4
    images, y = known_ranking["trained_on"][0]  # ranked by a model trained on the whole real training split
    every = torch.cat(digits.train.indices_by_class)
    assert torch.equal(images, digits.train.get(every)) and torch.equal(y, digits.train.labels[every])
    scores, labels = known_ranking["scores"][0], digits.train.labels
    for c in range(digits.num_classes):
        kept = recorder[0]["pool"][c].tolist()
        assert kept == expected_window(scores, labels, c, f, 1.0)
        dropped = set(digits.train.indices_by_class[c].tolist()) - set(kept)
        n = len(digits.train.indices_by_class[c])
        assert len(dropped) == sum(1 for r in range(n) if r / (n - 1) < f)
        assert max(float(scores[i]) for i in dropped) <= min(float(scores[i]) for i in kept)
    assert syn.metadata["hard_only"]["window"] == [f, 1.0]


# ----------------------------------------------------------------------------- config, CLI, diagnostics

def test_eval_protocol_follows_the_base():
    assert DASMConfig(base="dm").eval_protocol == "dc"
    assert DASMConfig(base="random").eval_protocol == "dc"
    cfg = registry.apply_overrides(DASMConfig.for_setting("digits", 10), {"base_overrides": "iterations=4;lr_img=2"})
    assert cfg.base_overrides == {"iterations": "4", "lr_img": "2"}
    assert DASMConfig.for_setting("digits", 10).difficulty_epochs < DASMConfig().difficulty_epochs


def test_cli_distill_with_a_base_override(tmp_path, capsys):
    out = tmp_path / "dasm.safetensors"
    code = cli_main(["distill", "--method", "dasm", "--dataset", "digits", "--ipc", "2", "--set", "base=dm",
                     "--set", "base_overrides=iterations=2;batch_real=8", "--set", "difficulty_epochs=1",
                     "--set", "difficulty_protocol=dc-nodsa", "--no-progress", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    syn = SyntheticSet.load(out)
    assert len(syn) == 20 and syn.segment_ids.tolist() == [0] * 10 + [1] * 10
    assert syn.metadata["dasm"]["base"] == "dm" and syn.metadata["dasm"]["schedule"] == "1@0-1,1@0.25-1"
    assert syn.metadata["dasm"]["segments"][1]["base_metadata"]["config"]["iterations"] == 2
    code = cli_main(["distill", "--method", "dasm", "--dataset", "digits", "--ipc", "2", "--set", "base=random",
                     "--set", "schedule=1@0-1,2@0.5-1", "--no-progress", "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "do not sum to IPC 2" in err


def test_diagnostics_figure_and_table(digits, tmp_path):
    from dasm.diagnostics import diagnostics_figure, diagnostics_table, segment_records

    syn = distill("dasm", DistillRequest(digits, ipc=2, seed=0, progress=False),
                  overrides={"base": "random", **FAST})
    path = syn.save(tmp_path / "d.safetensors")
    loaded = SyntheticSet.load(path)
    assert len(segment_records(loaded)) == 2
    files = diagnostics_figure(loaded, tmp_path / "diag")
    assert [f.suffix for f in files] == [".png", ".pdf"] and all(f.stat().st_size > 1000 for f in files)
    assert diagnostics_table(loaded).count("\n") == 2
    with pytest.raises(BenchError, match="no DASM diagnostics"):
        diagnostics_figure(distill("random", DistillRequest(digits, ipc=1)), tmp_path / "x")
