"""The cost model: per-unit CPU time from two run sizes, reference budgets, the files it writes."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from bench.cli.main import main
from bench.perf import cost_model
from bench.perf.cost_model import COLUMNS, RAW_COLUMNS, CostRow, cost_markdown, measure_costs, write_costs


def test_per_unit_is_the_slope_and_setup_the_intercept(monkeypatch):
    """A run of k units costing 3 + 2k CPU-seconds gives 2 per unit and 3 of setup; sizes alternate."""
    calls = []

    def fake_seconds(run):
        before = len(calls)
        run()
        k = calls[before]
        return 3.0 + 2.0 * k, 1.0

    monkeypatch.setattr(cost_model, "_cpu_seconds", fake_seconds)
    raw: list[list] = []
    per, setup = cost_model._timed_pair("outer iteration", "dm", 1, calls.append, 2, 10, 3, raw)
    assert per == pytest.approx(2.0) and setup == pytest.approx(3.0)
    assert calls == [2, 10, 2, 10, 2, 10]
    assert [r[3] for r in raw] == calls and [r[4] for r in raw] == [0, 0, 1, 1, 2, 2]


def test_median_over_repeats_resists_one_slow_run(monkeypatch):
    times = iter([1.0, 2.0, 1.0, 2.0, 1.0, 50.0])  # the last k2 run was disturbed

    monkeypatch.setattr(cost_model, "_cpu_seconds", lambda run: (next(times), 0.0))
    per, _ = cost_model._timed_pair("u", "m", 1, lambda k: None, 1, 2, 3, [])
    assert per == pytest.approx(1.0)


def test_subset_is_class_balanced_and_keeps_the_rest(digits):
    small = cost_model._subset(digits, 50)
    assert len(small.train) == 50 and small.name == digits.name and small.test is digits.test
    assert sorted(small.train.labels.bincount().tolist()) == [5] * 10


def test_distiller_unit_runs_the_method_at_k_and_reads_its_reference_budget(digits, monkeypatch):
    from bench.methods.registry import default_config

    seen = []

    def one_run(unit, method, ipc, run, k1, k2, repeats, raw):
        seen.append((unit, method, ipc, k1, k2))
        run(k1)  # the method really runs with its budget field set to k1
        return 0.5, 0.1

    monkeypatch.setattr(cost_model, "_timed_pair", one_run)
    per, setup, reference = cost_model._distiller_cost(digits, "dm", 1, 1, 2, 1, [])
    assert (per, setup) == (0.5, 0.1) and reference == default_config("dm", "digits", 1).iterations
    assert seen == [("outer iteration", "dm", 1, 2, 10)]  # dm's cheap iterations get more of them


def test_measure_on_digits_writes_rows_raw_runs_and_table(digits, tmp_path):
    rows, raw = measure_costs(digits, [], [1], protocols=("dc-nodsa",), repeats=1, eval_epochs=(2, 60),
                              report=lambda s: None)
    assert [(r.unit, r.method, r.ipc) for r in rows] == [("evaluation epoch", "dc-nodsa", 1)]
    ev = rows[0]
    assert ev.reference_units == 300 and ev.per_unit_seconds > 0 and (ev.k1, ev.k2) == (2, 60)
    assert ev.reference_hours == pytest.approx((ev.setup_seconds + 300 * ev.per_unit_seconds) / 3600)
    assert [r[3] for r in raw] == [2, 60]  # one run at each size

    paths = write_costs(rows, raw, str(tmp_path / "cost"), "digits", "test machine")
    table = pd.read_csv(paths[0])
    assert list(table.columns) == ["dataset", *COLUMNS, "machine"] and len(table) == 1
    assert list(pd.read_csv(paths[1]).columns) == ["dataset", *RAW_COLUMNS]
    md = paths[2].read_text()
    assert "| evaluation epoch | dc-nodsa | 1 |" in md and "test machine" in md and "extrapolation" in md


def test_markdown_shows_every_row_and_the_expert_epoch_without_ipc():
    rows = [CostRow("expert epoch", "mtt", 0, 140.0, 0.5, 3, 1, 2, 5000, 194.4, 1, "v1")]
    md = cost_markdown(rows, "cifar10-jpeg")
    assert "| expert epoch | mtt | - | 140.000 | 0.50 | 3 | 5,000 | 194.40 |" in md and "code v1" in md


@pytest.mark.parametrize("argv, needle", [
    (["--ipc", "0"], "--ipc"),
    (["--methods", "herding"], "cost times"),
    (["--repeats-at", "10=0"], "IPC=RUNS"),
    (["--repeats", "-1"], "--repeats"),
])
def test_cli_bad_input_is_one_line(argv, needle, tmp_path, capsys):
    assert main(["cost", "--out", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]
    assert not (tmp_path / "c").exists()



def _cost_rows() -> pd.DataFrame:
    rows = [CostRow("outer iteration", "dm", 1, 2.0, 10.0, 3, 2, 10, 20000, 0.0, 1, "v"),
            CostRow("evaluation epoch", "dc", 1, 0.5, 4.0, 3, 2, 6, 1000, 0.0, 1, "v")]
    return pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=COLUMNS)


def test_estimator_adds_setup_and_budget_and_says_none_where_it_has_no_row():
    from bench.methods.registry import default_config
    from bench.perf.cost_model import CostEstimator

    est = CostEstimator(_cost_rows())
    config = dataclasses.replace(default_config("dm", "cifar10", 1), iterations=300)
    assert est.distill_seconds("dm", 1, config) == pytest.approx(10.0 + 300 * 2.0)
    assert est.distill_seconds("dm", 10, config) is None            # no row at IPC 10
    assert est.distill_seconds("herding", 1, None) is None          # a coreset has no budget to scale
    assert est.evaluation_seconds("dc@200ep", 1, 200, 3) == pytest.approx(3 * (4.0 + 200 * 0.5))
    assert est.evaluation_seconds("dc-nodsa", 1, 300, 1) is None


def test_plan_prints_the_estimate_from_the_committed_cost_table(tmp_path, monkeypatch):
    from bench.run.experiment_run import plan_summary
    from bench.spec.experiment import load_spec

    spec = load_spec("demo-digits")
    monkeypatch.chdir(tmp_path)
    assert "no cost table for digits" in plan_summary(spec, tmp_path / "out")
    (tmp_path / "results" / "digits" / "cost").mkdir(parents=True)
    _cost_rows().to_csv(tmp_path / "results" / "digits" / "cost" / "cost.csv", index=False)
    line = plan_summary(spec, tmp_path / "out").splitlines()[-1]
    assert "CPU-hours on one thread" in line and "results/digits/cost/cost.csv" in line
    assert "herding distillation" in line and "no GPU cost" in line


def test_flop_count_of_a_convolution_is_the_textbook_formula():
    """2 * N * Cout * Cin * k^2 * H * W for the forward; the weight gradient doubles it."""
    import torch

    from bench.perf.roofline import count_flops

    x, w = torch.randn(4, 8, 6, 6), torch.randn(16, 8, 3, 3, requires_grad=True)
    forward = 2 * 4 * 16 * 8 * 9 * 6 * 6
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1)) == forward
    assert count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1).sum().backward()) == 2 * forward


def test_roofline_counts_each_units_flops_as_a_slope_and_writes_the_peak(digits, tmp_path):
    from bench.perf.roofline import count_flops, peak_gflops

    peak: list[list] = []
    rows, raw = measure_costs(digits, methods=["dm"], ipcs=[1], protocols=["dc"], repeats=1, report=lambda s: None,
                              peak=peak)
    by = {(r.unit, r.method): r for r in rows}
    assert by[("outer iteration", "dm")].flops_per_unit > 0 and by[("evaluation epoch", "dc")].flops_per_unit > 0
    # the evaluation epoch's count is the slope between 2 and 6 epochs of the same training run
    from bench.protocols import get_protocol
    from bench.train.evaluation import evaluate_training_set

    small = cost_model._subset(digits, 10).train

    def epochs(k):
        return count_flops(lambda: evaluate_training_set(small.images, small.labels, digits, "convnet",
                                                         get_protocol("dc").with_epochs(k), 1, 0, "cpu"))
    assert by[("evaluation epoch", "dc")].flops_per_unit == pytest.approx((epochs(6) - epochs(2)) / 4)
    assert {r[0] for r in peak} == {"matmul", "conv"} and len(peak) == 4  # before and after the units
    paths = write_costs(rows, raw, str(tmp_path), "digits", "test machine", peak)
    table = pd.read_csv(tmp_path / "cost.csv")
    assert (tmp_path / "peak.csv").exists() and table["flops_per_unit"].gt(0).all()
    best = max(peak_gflops(pd.read_csv(tmp_path / "peak.csv")).values())
    md = (tmp_path / "cost.md").read_text()
    r = by[("outer iteration", "dm")]
    rate = r.flops_per_unit / r.per_unit_seconds / 1e9
    assert f"| {rate:.2f} | {100 * rate / best:.1f} |" in md and len(paths) == 4


def test_without_roofline_no_flops_are_counted(digits, tmp_path):
    rows, raw = measure_costs(digits, methods=[], ipcs=[1], protocols=["dc"], repeats=1, report=lambda s: None)
    assert all(r.flops_per_unit != r.flops_per_unit for r in rows)  # NaN
    write_costs(rows, raw, str(tmp_path), "digits", "m")
    assert not (tmp_path / "peak.csv").exists() and "% of peak" not in (tmp_path / "cost.md").read_text()


def test_evaluation_epochs_can_be_timed_at_other_ipcs_than_the_distillers(digits, monkeypatch):
    seen = []
    monkeypatch.setattr(cost_model, "_distiller_cost", lambda data, m, ipc, *a: seen.append((m, ipc)) or (1.0, 0.0, 1))
    monkeypatch.setattr(cost_model, "_evaluation_cost", lambda data, p, ipc, *a: seen.append((p, ipc)) or (1.0, 0.0, 1))
    rows, _ = measure_costs(digits, methods=["dm"], ipcs=[1], eval_ipcs=[1, 10], protocols=["dc"], repeats=1,
                            report=lambda s: None)
    assert seen == [("dm", 1), ("dc", 1), ("dc", 10)] and [r.ipc for r in rows] == [1, 1, 10]


def test_evaluation_epochs_are_timed_without_a_full_test_pass(digits, monkeypatch):
    """The test pass's noise does not cancel in the slope: the timed runs score 10 test images."""
    import bench.train.evaluation

    sizes = []
    monkeypatch.setattr(bench.train.evaluation, "evaluate_training_set",
                        lambda *a, target=None, **k: sizes.append(len(target)))
    cost_model._evaluation_cost(digits, "dc", 1, 2, 6, 1, [])
    assert sizes and set(sizes) == {10}
