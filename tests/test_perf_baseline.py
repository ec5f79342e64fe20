"""The benchmark suite's baseline comparison (tests/benchmarks/conftest.py): ratios, flags, updates."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("bench_conftest", Path(__file__).parent / "benchmarks" / "conftest.py")
perf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf)


def test_ratios_flag_only_what_is_slower_than_the_threshold():
    current = {"a": {"median_s": 2.6}, "b": {"median_s": 1.0}, "c": {"median_s": 0.5}, "new": {"median_s": 1.0},
               "once": {"median_s": 9.0, "rounds": 1}}
    baseline = {"a": {"median_s": 2.0}, "b": {"median_s": 1.0}, "c": {"median_s": 1.0}, "once": {"median_s": 1.0}}
    rows = {r[0]: r for r in perf.compare(current, baseline)}
    assert rows["a"][3] == 1.3 and rows["b"][3] == 1.0 and rows["c"][3] == 0.5 and rows["new"][3] is None
    lines = {line.split()[0]: line for line in perf.format_table(list(rows.values()))[1:]}
    assert "SLOWER" in lines["a"] and "SLOWER" not in lines["b"] and "faster" in lines["c"]
    assert lines["new"].rstrip().endswith("new")
    assert "SLOWER" not in lines["once"] and "indicative" in lines["once"]     # one round: shown, not flagged


def test_update_keeps_benchmarks_not_run(tmp_path):
    path = tmp_path / "baseline.json"
    perf.write_baseline(path, {"x": {"median_s": 1.0, "rounds": 5}, "y": {"median_s": 2.0, "rounds": 5}}, "first")
    perf.write_baseline(path, {"x": {"median_s": 3.0, "rounds": 5}}, "")
    data = json.loads(path.read_text())
    assert data["benchmarks"] == {"x": {"median_s": 3.0, "rounds": 5}, "y": {"median_s": 2.0, "rounds": 5}}
    assert data["conditions"] == "first" and data["machine"]["torch_threads"] == 1


def test_keys_do_not_depend_on_where_pytest_ran():
    assert perf.benchmark_key("tests/benchmarks/test_speed.py::test_x[dc]") == "test_speed.py::test_x[dc]"
    assert perf.benchmark_key("test_speed.py::test_x[dc]") == "test_speed.py::test_x[dc]"
    assert perf.benchmark_key("tests/benchmarks/t.py::f[a/b]") == "t.py::f[a/b]"
