"""The budget ladder (bench.spec.budget, bench.run.budget, bench.report.budget): scaled fields, fresh sets per
rung, resume, the chosen-budget rule, the --max-hours cut-off and bad input."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

import bench.run.runner
from bench.cli.main import main
from bench.data.datasets import load_dataset
from bench.methods.registry import DistillRequest, default_config, distill
from bench.report.budget import choose_rung
from bench.report.stats import t_interval
from bench.spec.budget import BudgetSpec, rung_config
from bench.store.synthetic import SyntheticSet

# tiny: dm at 2 iterations, DASM on a 1-iteration dm base with 1-epoch ranking models
TINY = ["--dataset", "digits", "--ipc", "2", "--seeds", "0", "--epochs", "2", "--models", "1", "--device", "cpu",
        "--no-progress", "--set", "dm.iterations=2"]
TINY_DASM = [*TINY, "--set", "dasm.base=dm", "--set", "dasm.base_overrides=iterations=1",
             "--set", "dasm.difficulty_epochs=1", "--set", "dasm.real_ranking_epochs=1"]


def _without(config, names):
    d = dataclasses.asdict(config)
    return {k: v for k, v in d.items() if k not in names}


@pytest.mark.parametrize("method,fields", [("dc", ["iterations"]), ("dm", ["iterations"]), ("idc", ["iterations"]),
                                           ("mtt", ["iterations", "expansion_iterations"])])
def test_rung_multiplies_exactly_the_budget_fields(method, fields):
    spec = BudgetSpec([method], "digits", [10])
    x1, x4 = default_config(method, "digits", 10), rung_config(spec, method, 10, 4)
    for name in fields:
        assert getattr(x4, name) == 4 * getattr(x1, name)
    assert x4.iterations > x1.iterations
    assert _without(x4, fields) == _without(x1, fields)


def test_dasm_rung_scales_its_base_per_segment_and_user_x1_budgets():
    spec = BudgetSpec(["dasm"], "digits", [10, 50])
    # IDC's digits budget is 6 iterations up to IPC 10, 3 above; DASM's segments are 5+5 and 25+25
    assert rung_config(spec, "dasm", 10, 2).base_overrides == {"iterations": 12}
    assert rung_config(spec, "dasm", 50, 8).base_overrides == {"iterations": 24}
    assert _without(rung_config(spec, "dasm", 10, 2), ["base_overrides"]) == \
        _without(default_config("dasm", "digits", 10), ["base_overrides"])
    user = BudgetSpec(["dm", "dasm"], "digits", [10],
                      overrides={"dm": {"iterations": "3"},
                                 "dasm": {"base": "dm", "base_overrides": "iterations=5"}})
    assert rung_config(user, "dm", 10, 2).iterations == 6
    assert rung_config(user, "dasm", 10, 4).base_overrides == {"iterations": 20}


def test_chosen_budget_rule_on_hand_made_numbers():
    # within 0.5 points of the best mean
    assert choose_rung([(1, 80.0, 0.2), (2, 85.0, 0.1), (4, 85.4, 0.1), (8, 85.3, 0.1)]) == (2, "")
    # 1.0 below the best, but the intervals overlap (0.6 + 0.5 >= 1.0)
    assert choose_rung([(1, 70.0, 0.1), (2, 84.0, 0.6), (4, 85.0, 0.5), (8, 84.9, 0.1)]) == (2, "")
    # no overlap and more than 0.5 below: the next rung
    assert choose_rung([(1, 70.0, 0.1), (2, 84.0, 0.4), (4, 85.0, 0.5), (8, 84.9, 0.1)]) == (4, "")
    # one seed (no intervals): only the 0.5-point rule
    assert choose_rung([(1, 84.0, math.nan), (2, 85.0, math.nan)])[0] == 2
    # still rising at the top of the ladder
    rung, flag = choose_rung([(1, 60.0, 0.5), (2, 70.0, 0.5), (4, 80.0, 0.5)])
    assert rung == 4 and flag == "not converged: x2 is 87.5% of best rung"
    assert choose_rung([(1, 60.0, 0.5)]) == (1, "not converged: one rung measured")


def test_t_interval_matches_scipy():
    from scipy import stats

    vals = [80.0, 82.0, 85.0]
    iv = t_interval(vals)
    mean, hw = iv.mean, iv.half_width
    lo, hi = stats.t.interval(0.95, 2, loc=sum(vals) / 3, scale=stats.sem(vals))
    assert mean == pytest.approx(sum(vals) / 3) and hw == pytest.approx((hi - lo) / 2)
    assert math.isnan(t_interval([1.0]).half_width)


def test_ladder_distils_each_rung_afresh_writes_tables_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "budget"
    assert main(["budget", "--methods", "dm,dasm", "--rungs", "2,1", "--out", str(out), *TINY_DASM]) == 0
    sets = {p.name: SyntheticSet.load(p) for p in (out / "synthetic").glob("*.safetensors")}
    assert len(sets) == 4  # 2 methods x 2 rungs, each its own set
    dm_iters = sorted(s.metadata["config"]["iterations"] for s in sets.values() if s.metadata["method"] == "dm")
    assert dm_iters == [2, 4]
    dasm_base = sorted(s.metadata["config"]["base_overrides"]["iterations"] for s in sets.values()
                       if s.metadata["method"] == "dasm")
    assert dasm_base == [1, 2]

    # rung x2 was distilled from scratch, on train-val: the same set as a direct 4-iteration dm run
    rung2 = next(s for s in sets.values() if s.metadata["method"] == "dm" and s.metadata["config"]["iterations"] == 4)
    direct = distill("dm", DistillRequest(load_dataset("digits", train_split="train-val"), 2, 0, progress=False),
                     overrides={"iterations": 4})
    assert torch.equal(rung2.images, direct.images)

    table = pd.read_csv(out / "budget-digits-ipc2.csv")
    assert sorted(zip(table["method"], table["rung"])) == [("dasm", 1), ("dasm", 2), ("dm", 1), ("dm", 2)]
    assert (table["distill_s"] > 0).all() and table["acc_mean"].between(0, 100).all()
    assert table["val_mean"].between(0, 100).all() and set(table["train_split"]) == {"train-val"}
    assert table.groupby("method")["chosen"].sum().tolist() == [1, 1]
    assert set(table["budget"]) == {"iterations=2", "iterations=4", "base iterations=1", "base iterations=2"}
    md = (out / "budget-digits-ipc2.md").read_text()
    assert "| dm | x2 | iterations=4 |" in md and "95% t-interval" in md
    assert (out / "budget-digits.png").stat().st_size > 10_000 and (out / "budget-digits.pdf").exists()

    # a rerun distils and evaluates nothing
    def boom(job):
        raise AssertionError("a finished rung was run again")

    monkeypatch.setattr(bench.run.runner, "run_distill_job", boom)
    monkeypatch.setattr(bench.run.runner, "run_eval_job", boom)
    capsys.readouterr()
    assert main(["budget", "--methods", "dm,dasm", "--rungs", "1,2", "--out", str(out), *TINY_DASM]) == 0
    assert "FAILED" not in capsys.readouterr().out
    assert pd.read_csv(out / "budget-digits-ipc2.csv").equals(table)


def test_max_hours_stops_before_the_next_rung(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["budget", "--methods", "dm", "--rungs", "1,2,4", "--max-hours", "1e-9", "--out", str(out),
                 *TINY]) == 0
    printed = capsys.readouterr().out
    assert "budget: stopping before rung x2" in printed and "exceeds --max-hours" in printed
    assert len(list((out / "synthetic").glob("*.safetensors"))) == 1
    table = pd.read_csv(out / "budget-digits-ipc2.csv")
    assert table["rung"].tolist() == [1] and table["flag"].tolist() == ["not converged: one rung measured"]


@pytest.mark.parametrize("argv,needle", [
    (["--methods", "dm,nope"], "unknown method 'nope'"),
    (["--methods", "dm", "--rungs", "1,0"], "--rungs: expected a positive integer"),
    (["--methods", "dm", "--rungs", "-2"], "--rungs: expected a positive integer"),
    (["--methods", "random"], "'random' has no distillation budget"),
    (["--methods", "dasm", "--set", "dasm.base=herding"], "'herding' has no distillation budget"),
    (["--methods", "dm", "--set", "dm.iters=3"], "no field 'iters'"),
    (["--methods", "dm", "--set", "iterations=3"], "METHOD.KEY=VALUE"),
    (["--methods", "dm", "--max-hours", "0"], "--max-hours: expected a positive finite"),
    (["--methods", "dm", "--set", "dmm.iterations=3"], "override for 'dmm'"),
    (["--methods", "dm", "--ipc", "0"], "--ipc: expected a positive integer"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, argv, needle, capsys):
    ipc = [] if "--ipc" in argv else ["--ipc", "2"]
    code = main(["budget", *ipc, "--out", str(tmp_path / "x"), "--no-progress", "--device", "cpu", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x" / "synthetic").exists()


def test_reports_add_to_the_ladders_stored_beside_them(tmp_path):
    """A later run of one IPC, or of one method, adds to the tables and the figure; it never drops
    the ladders summarised before it (a run at IPC 50 once replaced the IPC 10 figure)."""
    import pandas as pd

    from bench.report.budget import write_budget_reports

    def summary(ipc, method, accs):
        return pd.DataFrame([{"dataset": "digits", "ipc": ipc, "method": method, "rung": r, "budget": f"iterations={r}",
                              "seeds": 3, "distill_s": 1.0 * r, "val_mean": a, "val_ci95": 0.5,
                              "acc_mean": a, "acc_ci95": 0.5, "train_split": "train-val",
                              "protocol": "idc@200ep", "chosen": r == 1, "flag": ""} for r, a in zip((1, 2), accs)])

    write_budget_reports(pd.concat([summary(10, "dm", [97.0, 97.2]), summary(10, "idc", [97.3, 97.4])]), tmp_path,
                         "digits")
    write_budget_reports(summary(50, "idc", [99.1, 99.0]), tmp_path, "digits")   # another IPC
    write_budget_reports(summary(10, "idc", [96.0, 96.5]), tmp_path, "digits")   # one method again
    ipc10 = pd.read_csv(tmp_path / "budget-digits-ipc10.csv")
    assert sorted(set(ipc10["method"])) == ["dm", "idc"] and len(ipc10) == 4
    assert ipc10[ipc10["method"] == "idc"]["acc_mean"].tolist() == [96.0, 96.5]  # the newer run wins
    assert ipc10[ipc10["method"] == "dm"]["chosen"].tolist() == [True, False]
    assert "| dm | x1 |" in (tmp_path / "budget-digits-ipc10.md").read_text()
    assert (tmp_path / "budget-digits-ipc50.md").exists() and (tmp_path / "budget-digits.png").exists()


def test_the_rung_is_chosen_on_validation_never_on_test(monkeypatch):
    """Test accuracy favours x1, validation x2: x2 is chosen, and test is reported at both."""
    import bench.report.budget as bc
    from bench.spec.budget import cell_keys

    spec = BudgetSpec(["dm"], "digits", [10], seeds=[0, 1, 2], rungs=[1, 2])
    scores = {1: (90.0, 80.0), 2: (85.0, 90.0)}  # rung: (test, validation)

    def rows(val_missing=False):
        records = [{"cell_key": key, "acc_last": scores[r][0] + 0.1 * s,
                    "acc_val": float("nan") if val_missing else scores[r][1] + 0.1 * s,
                    "distill_seconds": float(r), "protocol": "dc", "train_split": "train-val"}
                   for r in (1, 2) for s, key in cell_keys(spec, "dm", 10, r).items()]
        return pd.DataFrame(records)

    monkeypatch.setattr(bc, "budget_rows", lambda spec, out: rows())
    summary = bc.summarise_budget(spec, "unused")
    assert summary.set_index("rung")["chosen"].to_dict() == {1: False, 2: True}
    assert summary["acc_mean"].round(1).tolist() == [90.1, 85.1]  # test reported, not used
    md = bc.budget_markdown(summary)
    assert "Chosen on validation only" in md and "| 85.10 ± 0.25 |" in md and "| 90.10 ± 0.25 |" in md

    monkeypatch.setattr(bc, "budget_rows", lambda spec, out: rows(val_missing=True))
    summary = bc.summarise_budget(spec, "unused")
    assert not summary["chosen"].any() and summary["flag"].iloc[-1] == "no validation split: not chosen"


def test_every_rung_distils_from_train_val_by_default():
    spec = BudgetSpec(["dm"], "digits", [10], seeds=[0], rungs=[1])
    assert spec.grid(1, 10).train_split == "train-val"
    full = BudgetSpec(["dm"], "digits", [10], seeds=[0], rungs=[1], train_split="full")
    assert bc_keys(spec) != bc_keys(full)  # the pool is part of the set's identity


def bc_keys(spec):
    from bench.spec.budget import cell_keys

    return cell_keys(spec, "dm", 10, 1)


def test_a_full_pool_ladder_is_reported_but_never_chosen(tmp_path):
    out = tmp_path / "b"
    assert main(["budget", "--methods", "dm", "--rungs", "1,2", "--train-split", "full", "--out", str(out), *TINY]) == 0
    table = pd.read_csv(out / "budget-digits-ipc2.csv")
    assert not table["chosen"].any() and table["flag"].fillna("").tolist() == ["", "no validation split: not chosen"]
    assert table["val_mean"].isna().all() and set(table["train_split"]) == {"full"}
    assert "no validation split: not chosen" in (out / "budget-digits-ipc2.md").read_text()
