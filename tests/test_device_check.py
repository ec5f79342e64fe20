"""The device check (bench/perf/device_check.py), rehearsed on CPU on digits: every method at IPC 1 for a
few iterations, a 2-epoch full evaluation, a failing method, the time guard, bad input."""

from __future__ import annotations

import csv
import time

import pytest

from bench.cli.device_check import main
from bench.methods.registry import get_method
from bench.perf import device_check
from bench.perf.device_check import COLUMNS, METHODS, run_device_check

TINY = dict(iterations=1, full_eval_epochs=2, eval_epochs=1)


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_every_method_passes_on_cpu_and_the_files_say_so(digits, tmp_path, capsys):
    rows = run_device_check(digits, "cpu", [1], METHODS, out_dir=tmp_path, **TINY)
    printed = capsys.readouterr().out.splitlines()
    assert [r["status"] for r in rows] == ["PASS"] * (len(METHODS) + 1), printed
    table = _rows(tmp_path / "device_check.csv")
    distilled = [r for r in table if r["check"] == "distill"]
    assert [(r["method"], r["ipc"]) for r in distilled] == [(m, "1") for m in METHODS]
    for r in distilled:
        assert float(r["seconds_distill"]) > 0 and float(r["seconds_eval"]) > 0
        assert r["device"] == "cpu" and r["torch_version"] and r["code_version"] and not r["error"]
        assert r["acceleration"].startswith("amp=off channels_last=off")  # spec options are CUDA-only
    full = table[-1]
    assert full["check"] == "full evaluation" and full["method"] == "dm" and full["eval_protocol"] == "dc@2ep"
    assert float(full["seconds_eval"]) > 0 and full["status"] == "PASS"
    assert printed[0].startswith("PASS random ipc 1: distill ") and printed[0].endswith(" s")
    assert printed[-1].startswith("PASS full evaluation dm ipc 1 (dc@2ep, 2 epochs): ")
    assert not (tmp_path / "mtt_buffers").exists()  # the one-expert buffer is the check's own
    md = (tmp_path / "device_check.md").read_text()
    assert md.startswith("# Device check: PASS") and "| distill | mtt | 1 |" in md


def test_shrunk_configs_of_mtt_dasm_and_coresets(tmp_path):
    mtt = device_check.check_overrides("mtt", "cifar10", [1, 10], 2, tmp_path, 1)
    # CIFAR-10 IPC 10's window (start < 20, 2 expert epochs) sets one buffer for both IPCs
    assert mtt == {"iterations": 2, "expansion_iterations": 2, "num_experts": 1, "train_epochs": 21,
                   "buffer_dir": str(tmp_path)}
    dasm = device_check.check_overrides("dasm", "cifar10", [10], 2, tmp_path, 10)
    assert dasm == {"base_overrides": {"iterations": 2}, "difficulty_epochs": 2, "real_ranking_epochs": 2}
    assert device_check.check_overrides("kcenter", "cifar10", [1], 2, tmp_path, 1) == {"epochs": 1}
    assert device_check.check_overrides("random", "cifar10", [1], 2, tmp_path, 1) == {}


@pytest.mark.parametrize("ipc", [1, 10])
def test_every_shrunk_config_is_valid_at_cifar10_scale(ipc, tmp_path):
    """What the GPU run would distill with: each config accepts its overrides (and validates)."""
    from bench.methods.registry import apply_overrides, default_config

    for method in METHODS:
        overrides = device_check.check_overrides(method, "cifar10-jpeg", [1, 10], 2, tmp_path, ipc)
        apply_overrides(default_config(method, "cifar10-jpeg", ipc), overrides)


def test_a_failing_method_fails_alone_with_its_message_and_exit_1(tmp_path, monkeypatch, capsys):
    def broken(request, config):
        raise RuntimeError("CUDA error: device-side assert triggered\nsecond line")

    monkeypatch.setattr(get_method("dm"), "fn", broken)
    out = tmp_path / "out"
    code = main(["--dataset", "digits", "--device", "cpu", "--methods", "random,dm,herding", "--ipc", "1",
                 "--iterations", "1", "--eval-epochs", "1", "--full-eval-epochs", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAIL dm ipc 1: RuntimeError: CUDA error: device-side assert triggered\n" in printed
    table = {(r["check"], r["method"]): r for r in _rows(out / "device_check.csv")}
    assert table["distill", "dm"]["status"] == "FAIL"
    assert table["distill", "dm"]["error"] == "RuntimeError: CUDA error: device-side assert triggered"
    assert table["distill", "random"]["status"] == table["distill", "herding"]["status"] == "PASS"
    # the full evaluation takes another passing set when DM failed
    assert table["full evaluation", "random"]["status"] == "PASS"
    assert (out / "device_check.md").read_text().startswith("# Device check: FAIL")


def test_the_time_guard_skips_what_would_start_after_the_budget(digits, tmp_path, monkeypatch, capsys):
    spec = get_method("random")
    slow_fn = spec.fn

    def slow(request, config):
        time.sleep(1.6)
        return slow_fn(request, config)

    monkeypatch.setattr(spec, "fn", slow)
    rows = run_device_check(digits, "cpu", [1, 2], ["random", "herding"], out_dir=tmp_path, budget_seconds=1.5,
                            **TINY)
    assert [(r["method"], r["ipc"], r["status"]) for r in rows] == [
        ("random", 1, "PASS"), ("herding", 1, "SKIPPED(time)"), ("random", 2, "SKIPPED(time)"),
        ("herding", 2, "SKIPPED(time)"), ("random", 1, "SKIPPED(time)")]
    assert "SKIPPED(time) herding ipc 1" in capsys.readouterr().out
    assert (tmp_path / "device_check.md").read_text().startswith("# Device check: PASS (some skipped)")


@pytest.mark.parametrize("argv, message", [
    (["--ipc", "0"], "--ipc"),
    (["--methods", "dmm"], "dmm"),
    (["--dataset", "no-such-set"], "no-such-set"),
    (["--iterations", "x"], "--iterations"),
    (["--amp", "bf16"], "CUDA"),
    (["--ipc", "100000"], "IPC 100000"),
    (["--out", "{file}"], "--out"),
])
def test_bad_input_is_one_error_line_and_exit_2(argv, message, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    defaults = {"--dataset": "digits", "--device": "cpu", "--out": str(tmp_path / "out")}
    given = dict(defaults, **{k: v.format(file=tmp_path / "file") for k, v in zip(argv[::2], argv[1::2])})
    assert main([x for pair in given.items() for x in pair]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], captured.err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_nox_session_runs_the_check_with_gpu_defaults(monkeypatch):
    import importlib.util
    import sys
    import types
    from pathlib import Path

    fake = types.ModuleType("nox")
    fake.options, fake.Session = types.SimpleNamespace(), object
    fake.session = lambda *a, **k: (lambda f: f)
    monkeypatch.setitem(sys.modules, "nox", fake)
    spec = importlib.util.spec_from_file_location("noxfile_dc", Path(__file__).resolve().parents[1] / "noxfile.py")
    noxfile = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(noxfile)
    runs = []
    session = types.SimpleNamespace(posargs=["--ipc", "1"], venv_backend="virtualenv", install=lambda *a: None,
                                    run=lambda *a: runs.append(a))
    noxfile.device_check(session)
    (args,) = runs
    assert args[:3] == ("python", "-m", "bench.cli.device_check")
    pairs = dict(zip(args[3::2], args[4::2]))
    assert pairs == {"--dataset": "cifar10-jpeg", "--data-root": "../shared/data", "--device": "cuda",
                     "--out": "results/device-check", "--ipc": "1"}
