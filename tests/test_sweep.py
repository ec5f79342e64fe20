"""Optuna sweeps of DASM's schedule: the sampled space, the validation-only objective, pruning,
export -> ``dasm-bench distill --config`` round trip, resuming a study, and CLI errors; the harness
reaches DASM's objective only through the ``search`` hook registered with the method.

Fast settings: digits, IPC 3-4, a 2-epoch ranking model without augmentation, 2-epoch
evaluations of one model, and the "random" base (or DM with 2 iterations).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random

import optuna
import pytest

import dasm.schedule_search as schedule_search
from bench.cli.main import main
from bench.errors import BenchError, DivergedError
from bench.methods.registry import get_method
from bench.protocols import get_protocol
from bench.run.sweep import SweepSpec, make_objective, sample_learning_rate, segment_reporter
from bench.store.synthetic import SyntheticSet
from bench.train.evaluation import EvalResult, evaluate_synthetic
from dasm.base_matcher import parse_base_overrides
from dasm.schedule_search import (
    ScheduleObjective,
    SearchSpace,
    fit_window,
    format_base_overrides,
    largest_remainder,
    sample_schedule,
    segment_sizes,
)
from dasm.segment_schedule import SegmentSchedule

FAST = {"difficulty_epochs": "2", "difficulty_protocol": "dc-nodsa"}
FAST_ARGS = ["--set", "difficulty_epochs=2", "--set", "difficulty_protocol=dc-nodsa",
             "--protocol", "dc-nodsa", "--epochs", "2", "--models", "1"]


class RandomTrial:
    """A stand-in for an Optuna trial: uniform (or log-uniform) draws, and now and then an exact
    bound, so degenerate shares (all 0, all 1) and the range ends are exercised too."""

    def __init__(self, rng: random.Random, prune: bool = False) -> None:
        self.rng, self.prune = rng, prune
        self.params: dict = {}
        self.reports: list[tuple[int, float]] = []
        self.user_attrs: dict = {}

    def suggest_int(self, name, low, high):
        self.params[name] = self.rng.randint(low, high)
        return self.params[name]

    def suggest_float(self, name, low, high, log=False):
        r = self.rng.random()
        if r < 0.1:
            v = low
        elif r < 0.2:
            v = high
        elif log:
            v = math.exp(self.rng.uniform(math.log(low), math.log(high)))
        else:
            v = self.rng.uniform(low, high)
        self.params[name] = v
        return v

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.prune

    def set_user_attr(self, key, value):
        self.user_attrs[key] = value


# ----------------------------------------------------------------------------- the sampled space

def test_largest_remainder_known_values():
    assert largest_remainder([0.5, 0.3, 0.2], 4) == [2, 1, 1]
    assert largest_remainder([1, 1, 1], 4) == [2, 1, 1]          # tie: the earlier entry gets it
    assert largest_remainder([0.0, 0.0], 5) == [3, 2]            # degenerate shares: even split
    assert largest_remainder([0.1, 0.9], 0) == [0, 0]
    assert largest_remainder([2, 0, 1], 7) == [5, 0, 2]          # 4.67, 0, 2.33


@pytest.mark.parametrize("sample_hi, sample_first", [(False, False), (True, False), (False, True), (True, True)])
def test_sampled_schedules_are_valid(sample_hi, sample_first):
    rng = random.Random(1234)
    space = SearchSpace(max_segments=4, max_lo=0.9, sample_hi=sample_hi, sample_first_window=sample_first,
                        min_keep=0.1)
    seen_k = set()
    for _ in range(600):
        ipc = rng.randint(1, 60)
        min_class = rng.choice([None, 2, 12, 40, 113])
        trial = RandomTrial(rng)
        s = sample_schedule(trial, ipc, space, min_class)
        k = len(s.sizes)
        seen_k.add(k)
        assert k == trial.params["num_segments"] and 1 <= k <= min(4, ipc)
        assert sum(s.sizes) == ipc and min(s.sizes) >= 1
        s.check_ipc(ipc)
        for j, ((lo, hi), size) in enumerate(zip(s.windows, s.sizes), 1):
            assert 0.0 <= lo < hi <= 1.0
            assert abs(lo * 100 - round(lo * 100)) < 1e-9 and abs(hi * 100 - round(hi * 100)) < 1e-9
            if j == 1 and not sample_first:
                assert (lo, hi) == (0.0, 1.0)
            if not sample_hi:
                assert hi == 1.0
            if min_class and min_class > 1 and size <= min_class - 1:
                # the smallest class keeps >= `size` real images in the window
                assert (hi - lo) * (min_class - 1) >= size - 1e-9
        assert SegmentSchedule.parse(s.to_string()) == s  # the exported string is exact
    assert seen_k == {1, 2, 3, 4}


def test_fixed_trial_maps_params_to_the_schedule():
    t = optuna.trial.FixedTrial({"num_segments": 2, "share_1": 0.5, "share_2": 0.5, "segment2_lo": 0.3})
    assert sample_schedule(t, 10).to_string() == "5@0-1,5@0.3-1"
    t = optuna.trial.FixedTrial({"num_segments": 3, "share_1": 0.0, "share_2": 0.0, "share_3": 0.99,
                                 "segment2_lo": 0.2, "segment3_lo": 0.55})
    assert sample_schedule(t, 10).to_string() == "1@0-1,1@0.2-1,8@0.55-1"
    # a window too narrow for its segment in the smallest class (12 images) is widened downwards
    t = optuna.trial.FixedTrial({"num_segments": 2, "share_1": 0.0, "share_2": 0.9, "segment2_lo": 0.7})
    s = sample_schedule(t, 10, min_class_size=12)
    assert s.sizes == (1, 9) and s.windows[1] == (0.18, 1.0)  # 1 - 9/11 = 0.1818 -> floored
    assert fit_window(0.5, 0.6, 0.3) == (0.3, 0.6)
    assert fit_window(0.05, 0.1, 0.5) == (0.0, 0.5)


def test_sizes_are_dirichlet_uniform_on_the_simplex():
    # -log(1-u) makes the K=2 proportion uniform; plain u/(u1+u2) would give P(p < 1/4) = 1/6
    rng = random.Random(7)
    props = [segment_sizes([rng.random(), rng.random()], 1002)[0] / 1002 for _ in range(4000)]
    assert abs(sum(p < 0.25 for p in props) / len(props) - 0.25) < 0.03
    assert abs(sum(props) / len(props) - 0.5) < 0.02


def test_learning_rate_is_log_uniform_around_the_default_and_rounded():
    rng = random.Random(3)
    for _ in range(300):
        trial = RandomTrial(rng)
        lr = sample_learning_rate(trial, "lr_img", 5e-3, 10.0)
        assert 5e-4 * (1 - 1e-3) <= lr <= 5e-2 * (1 + 1e-3)
        assert float(f"{lr:.4g}") == lr
    fixed = RandomTrial(rng)
    assert sample_learning_rate(fixed, "lr_img", 0.1, 1.0) == 0.1 and not fixed.params  # factor 1: not swept
    text = format_base_overrides({"iterations": 2, "lr_img": 0.0001234})
    assert text == "iterations=2;lr_img=0.0001234"
    assert parse_base_overrides(text) == {"iterations": "2", "lr_img": "0.0001234"}


# ----------------------------------------------------------------------------- pruning

def test_segment_reporter_reports_per_images_and_prunes():
    trial = RandomTrial(random.Random(0))
    on_segment = segment_reporter(trial, (3, 1, 2))
    on_segment(1, 40.0)
    on_segment(2, 55.0)
    assert trial.reports == [(3, 40.0), (4, 55.0)]  # step = images per class so far
    trial.prune = True
    with pytest.raises(optuna.TrialPruned, match="segment 3"):
        on_segment(3, 10.0)
    assert trial.reports[-1] == (6, 10.0)


class _PruningTrial(optuna.trial.FixedTrial):
    def should_prune(self) -> bool:
        return True


def _spec(**kw) -> SweepSpec:
    base = dict(dataset="digits", ipc=4, base="random", trials=1, overrides=dict(FAST), protocol="dc-nodsa",
                eval_epochs=2, eval_models=1, device="cpu")
    base.update(kw)
    return SweepSpec(**base)


def test_pruned_trial_stops_before_evaluation(digits, monkeypatch):
    calls = []
    monkeypatch.setattr(schedule_search, "evaluate_synthetic", lambda *a, **k: calls.append(k))
    objective = ScheduleObjective(_spec(), digits)
    trial = _PruningTrial({"num_segments": 2, "share_1": 0.5, "share_2": 0.5, "segment2_lo": 0.3})
    with pytest.raises(optuna.TrialPruned, match="segment 1"):
        objective(trial)
    assert calls == []


# ----------------------------------------------------------------------------- the objective

class _NoTest:
    """Stands in for the test split: any use fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the sweep touched the test split ({name})")

    def __len__(self):
        raise AssertionError("the sweep touched the test split (len)")


def test_objective_scores_on_the_validation_split_only(digits, monkeypatch):
    seen = []

    def fake_evaluate(syn, data, arch, protocol, num_models, seed, device, split="test", progress=False):
        seen.append({"split": split, "n": len(syn), "schedule": syn.metadata["dasm"]["schedule"],
                     "protocol": protocol.name, "models": num_models})
        return EvalResult(arch, protocol.name, [42.0], [50.0], 0.1)

    monkeypatch.setattr(schedule_search, "evaluate_synthetic", fake_evaluate)
    no_test = dataclasses.replace(digits, test=_NoTest())
    objective = ScheduleObjective(_spec(), no_test)
    trial = optuna.trial.FixedTrial({"num_segments": 2, "share_1": 0.5, "share_2": 0.5, "segment2_lo": 0.3})
    assert objective(trial) == 42.0
    assert seen == [{"split": "val", "n": 40, "schedule": "2@0-1,2@0.3-1", "protocol": "dc-nodsa@2ep", "models": 1}]
    attrs = trial.user_attrs
    assert attrs["config"]["schedule"] == "2@0-1,2@0.3-1" and attrs["config"]["base"] == "random"
    assert 0.0 <= attrs["val_after_segment1"] <= 100.0 and "val_after_segment2" in attrs


def test_a_diverged_run_fails_only_its_trial(digits, monkeypatch):
    def diverge(*a, **k):
        raise DivergedError("training diverged: loss became nan at epoch 1")

    monkeypatch.setattr(schedule_search, "evaluate_synthetic", diverge)
    trial = optuna.trial.FixedTrial({"num_segments": 1})
    value = ScheduleObjective(_spec(ipc=2), digits)(trial)
    assert math.isnan(value) and "diverged" in trial.user_attrs["error"]


def test_the_sweep_finds_dasms_objective_through_its_registered_hook(digits):
    assert get_method("dasm").hook("search") is ScheduleObjective
    objective = make_objective(_spec(), digits)
    assert isinstance(objective, ScheduleObjective) and objective.protocol.name == "dc-nodsa@2ep"
    with pytest.raises(BenchError, match="'dm' has no search space"):
        make_objective(_spec(method="dm"), digits)
    # the CLI hands the search space over as a dict of settings; the objective checks it
    assert ScheduleObjective(_spec(space={"max_segments": 2}), digits).space == SearchSpace(max_segments=2)
    with pytest.raises(BenchError, match="no setting 'max_segment'"):
        ScheduleObjective(_spec(space={"max_segment": 2}), digits)


def test_bad_fixed_fields_fail_before_any_trial(digits):
    with pytest.raises(BenchError, match="decided by the sweep"):
        ScheduleObjective(_spec(overrides={"schedule": "4"}), digits)
    with pytest.raises(BenchError, match="base_overrides"):
        ScheduleObjective(_spec(base="dm", overrides={"base_overrides": "nope=1"}), digits)
    # a learning rate fixed by the user is not swept
    obj = ScheduleObjective(_spec(base="dm", overrides={"base_overrides": "iterations=2;lr_img=0.5"}), digits)
    assert obj.lr_field is None
    assert ScheduleObjective(_spec(base="dm"), digits).lr_field == "lr_img"


# ----------------------------------------------------------------------------- CLI: export, resume, errors

def test_cli_sweep_resumes_and_best_config_reproduces_the_trial(tmp_path, digits, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", "--dataset", "digits", "--ipc", "3", "--base", "dm", "--study", "t", "--out", str(out),
            "--set", "base_overrides=iterations=2", *FAST_ARGS, "--device", "cpu"]
    assert main([*argv, "--trials", "2"]) == 0
    storage = f"sqlite:///{out / 'study.db'}"  # the default storage lives inside the output directory
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == 2
    assert main([*argv, "--trials", "2"]) == 0  # the same SQLite study: continues, does not restart
    study = optuna.load_study(study_name="t", storage=storage)
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    printed = capsys.readouterr().out
    assert "2 trial(s) so far" in printed and "[2/2 trial #3]" in printed

    best = json.loads((out / "best.json").read_text())
    assert best["trial"] == study.best_trial.number and best["value"] == study.best_value
    cfg = best["config"]
    assert cfg["base"] == "dm" and SegmentSchedule.parse(cfg["schedule"]).ipc == 3
    lr = parse_base_overrides(cfg["base_overrides"])["lr_img"]
    assert float(lr) == pytest.approx(study.best_trial.params["lr_img"], rel=1e-3)
    assert all(isinstance(v, (str, int, float)) for v in cfg.values())
    assert (out / "optimization_history.png").stat().st_size > 1000 and (out / "trials.csv").exists()

    syn_path = tmp_path / "best.safetensors"
    # the sweep distilled from the train-val split (val held out): reproduce the trial on that split
    assert main(["distill", "--method", "dasm", "--dataset", "digits", "--ipc", "3", "--config", str(out / "best.json"),
                 "--out", str(syn_path), "--no-progress", "--device", "cpu", "--train-split", "train-val"]) == 0
    syn = SyntheticSet.load(syn_path)
    assert syn.metadata["dasm"]["schedule"] == cfg["schedule"]
    assert syn.metadata["config"]["base_overrides"] == {"iterations": "2", "lr_img": lr}
    # the exported config reproduces the best trial's validation score exactly (CPU, same seed)
    res = evaluate_synthetic(syn, digits, "convnet", get_protocol("dc-nodsa", 2), 1, 0, "cpu", split="val")
    assert res.last_mean == pytest.approx(best["value"])


@pytest.mark.parametrize("extra, needle", [
    (["--trials", "0"], "--trials"),
    (["--set", "schedule=3"], "decided by the sweep"),
    (["--base", "nope"], "unknown method"),
    (["--base", "dasm"], "DASM variant"),
    (["--storage", "nosuchdb://x"], "cannot open study"),
    (["--arch", "resnet-18"], "unknown architecture"),
    (["--max-lo", "1.5"], "max_lo"),
    (["--epochs", "0"], "--epochs"),
])
def test_cli_bad_input_is_one_line(tmp_path, extra, needle, capsys):
    argv = ["sweep", "--ipc", "3", "--base", "random", "--out", str(tmp_path / "x"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and needle in err, err
    assert not (tmp_path / "x").exists()


def test_ipc_too_large_for_the_dataset(tmp_path, capsys):
    assert main(["sweep", "--ipc", "500", "--base", "random", "--out", str(tmp_path / "x")]) == 2
    assert "smallest class" in capsys.readouterr().err


def test_best_config_names_the_trials_tied_with_it():
    """At a validation ceiling several schedules score the same: best.json says which, and the
    export notes that the objective could not rank them."""
    from bench.run.sweep import SweepSpec, best_config

    study = optuna.create_study(direction="maximize")
    for value, schedule in [(99.2, "a"), (100.0, "b"), (98.8, "c"), (100.0, "d"), (100.0, "e")]:
        study.add_trial(optuna.trial.create_trial(value=value, params={}, distributions={},
                                                  user_attrs={"config": {"schedule": schedule}}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={}, distributions={}))
    payload = best_config(study, SweepSpec(dataset="digits", ipc=4, base="random"), "dc@50ep")
    assert payload["trial"] == 1 and payload["config"] == {"schedule": "b"}
    assert payload["tied_trials"] == [3, 4]
    study2 = optuna.create_study(direction="maximize")
    study2.add_trial(optuna.trial.create_trial(value=1.0, params={}, distributions={}, user_attrs={"config": {}}))
    assert best_config(study2, SweepSpec(dataset="digits", ipc=4, base="random"), "dc@50ep")["tied_trials"] == []
