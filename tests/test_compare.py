"""`dasm-bench compare`: a run against a reference table, cell by cell, within the noise."""

from __future__ import annotations

import pytest

from bench.cli.main import main
from bench.report.compare import compare_results
from bench.store.results import ResultsTable

N_TEST = 539  # digits' test split: one image = 0.186 points


def _rows(values: dict[tuple[str, int, int], float]) -> list[dict]:
    return [{"cell_key": f"{m}-{ipc}-{seed}", "method": m, "dataset": "digits", "ipc": ipc, "seed": seed,
             "arch": "convnet", "protocol": "dc@200ep", "acc_last": acc}
            for (m, ipc, seed), acc in values.items()]


REF = {("random", 1, 0): 70.0, ("random", 1, 1): 74.0, ("random", 1, 2): 72.0,   # std 2.0 -> tol 4.0
       ("dm", 10, 0): 96.0, ("dm", 10, 1): 96.0, ("dm", 10, 2): 96.0}            # std 0 -> 2 images


@pytest.fixture()
def ref(tmp_path):
    ResultsTable(tmp_path / "ref").append(_rows(REF))
    return tmp_path / "ref"


def _run(tmp_path, changes: dict, drop: tuple = ()) -> str:
    values = {k: v + changes.get(k, 0.0) for k, v in REF.items() if k not in drop}
    ResultsTable(tmp_path / "run").append(_rows(values))
    return str(tmp_path / "run")


def test_identical_run_agrees(tmp_path, ref, capsys):
    report = compare_results(_run(tmp_path, {}), ref, test_sizes={"digits": N_TEST})
    assert report.agree and len(report.cells) == 6
    assert main(["compare", str(tmp_path / "run"), str(ref)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("agree: all 6 cells") and "6 identical" in line


def test_tolerance_is_seed_spread_or_two_test_images(tmp_path, ref):
    # 3.9 points inside a 2-std band of 4.0; one test image (0.19) inside the 2-image floor of 0.37
    report = compare_results(_run(tmp_path, {("random", 1, 0): 3.9, ("dm", 10, 1): -0.19}), ref,
                             test_sizes={"digits": N_TEST})
    assert report.agree
    tol = {c.key[0]: c.tolerance for c in report.cells}
    assert tol["random"] == pytest.approx(4.0) and tol["dm"] == pytest.approx(200 / N_TEST)


def test_a_cell_outside_the_noise_is_named(tmp_path, ref, capsys):
    run = _run(tmp_path, {("dm", 10, 2): -1.0})          # 5 test images on a cell whose seeds agree exactly
    report = compare_results(run, ref, test_sizes={"digits": N_TEST})
    assert not report.agree and [c.key[3] for c in report.outside] == [2]
    with pytest.raises(SystemExit) as info:
        main(["compare", run, str(ref)])
    assert info.value.code == 1
    line = capsys.readouterr().out.strip()
    assert line.startswith("DISAGREE") and "dm ipc=10 seed=2" in line and "\n" not in line


def test_missing_cells_disagree(tmp_path, ref):
    report = compare_results(_run(tmp_path, {}, drop=(("random", 1, 2),)), ref, test_sizes={"digits": N_TEST})
    assert not report.agree and report.missing == [("random", "digits", 1, 2, "convnet", "dc@200ep")]
    assert "1 reference cells missing" in report.line()


def test_no_table_is_one_line_error(tmp_path, ref, capsys):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(main(["compare", str(tmp_path / "nothing"), str(ref)]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no results table") and "\n" not in err


# ----------------------------------------------------------------------------- a restricted run (issue 29)

def _restricted_run(tmp_path, methods: list[str], ipcs: list[int], drop: tuple = ()) -> str:
    import types

    from bench.spec.run_selection import record_selection

    run = _run(tmp_path, {}, drop=tuple(k for k in REF if k[0] not in methods or k[1] not in ipcs) + drop)

    def spec(ms, ips):  # the parts of an ExperimentSpec the record reads
        return types.SimpleNamespace(name="ref-spec", dataset="digits", ipcs=ips, seeds=[0, 1, 2], archs=["convnet"],
                                     method_names=lambda: list(ms))
    record_selection(run, spec(["random", "dm"], [1, 10]), spec(methods, ipcs))
    return run


def test_restricted_run_compares_only_what_it_was_asked_for(tmp_path, ref, capsys):
    run = _restricted_run(tmp_path, ["random"], [1])
    report = compare_results(run, ref, test_sizes={"digits": N_TEST})
    assert report.agree and len(report.cells) == 3 and len(report.not_run) == 3 and not report.missing
    assert main(["compare", run, str(ref)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("agree: all 3 computed cells (3 reference cells not run)") and "\n" not in line


def test_restricted_run_still_misses_a_cell_it_was_asked_for(tmp_path, ref):
    report = compare_results(_restricted_run(tmp_path, ["random"], [1], drop=(("random", 1, 2),)), ref,
                             test_sizes={"digits": N_TEST})
    assert not report.agree and report.missing == [("random", "digits", 1, 2, "convnet", "dc@200ep")]
    assert "2 computed cells (3 reference cells not run)" in report.line()


def test_whole_spec_run_into_a_restricted_directory_expects_every_cell_again(tmp_path, ref):
    import types

    from bench.spec.run_selection import read_selection, record_selection

    run = _restricted_run(tmp_path, ["random"], [1])
    assert read_selection(run) is not None
    whole = types.SimpleNamespace(name="ref-spec", dataset="digits", ipcs=[1, 10], seeds=[0, 1, 2], archs=["convnet"],
                                  method_names=lambda: ["random", "dm"])
    record_selection(run, whole, whole)
    report = compare_results(run, ref, test_sizes={"digits": N_TEST})
    assert read_selection(run) is None and not report.agree and len(report.missing) == 3 and report.not_run is None


def test_damaged_selection_record_is_one_line_error(tmp_path, ref, capsys):
    run = _run(tmp_path, {})
    (tmp_path / "run" / "run_selection.json").write_text("{not json")
    assert main(["compare", run, str(ref)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "run_selection.json is damaged" in err and "\n" not in err


def test_cli_run_records_its_restriction(tmp_path, monkeypatch):
    import bench.run.experiment_run
    from bench.spec.run_selection import read_selection

    monkeypatch.setattr(bench.run.experiment_run, "run_experiment", lambda *a, **k: None)
    out = tmp_path / "demo"
    assert main(["run", "demo-digits", "--out", str(out), "--methods", "random,herding", "--ipc", "1",
                 "--no-progress"]) == 0
    assert read_selection(out) == [{"dataset": "digits", "methods": ["random", "herding"], "ipcs": [1],
                                    "seeds": [0, 1, 2], "archs": ["convnet"]}]
    whole = tmp_path / "whole"
    assert main(["run", "demo-digits", "--out", str(whole), "--no-progress"]) == 0
    assert not (whole / "run_selection.json").exists()   # the whole spec: no record, every cell expected
