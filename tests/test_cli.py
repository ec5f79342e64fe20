"""The CLI end to end: each bad input gives one line on stderr and exit code 2, nothing lost."""

import subprocess
import sys

import pandas as pd
import pytest

from bench.cli.main import main


def _err_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture()
def random_set(tmp_path):
    out = tmp_path / "r.safetensors"
    assert main(["distill", "--method", "random", "--dataset", "digits", "--ipc", "2", "--out", str(out),
                 "--no-progress", "--picture"]) == 0
    return out


def test_distill_evaluate_show_list(tmp_path, random_set, capsys):
    assert random_set.exists() and random_set.with_suffix(".png").exists()
    res = tmp_path / "res"
    assert main(["evaluate", str(random_set), "--protocol", "dc-nodsa", "--epochs", "3", "--models", "1",
                 "--results", str(res), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "last" in out and "best" not in out  # no test-selected "best" (bench.train.evaluation)
    df = pd.read_parquet(res / "results.parquet")
    assert df.iloc[0]["method"] == "random" and df.iloc[0]["protocol"] == "dc-nodsa@3ep"
    assert df.iloc[0]["train_split"] == "full"  # `distill` defaults to the whole training set
    assert main(["show", str(random_set), "--out", str(tmp_path / "p.png")]) == 0
    assert (tmp_path / "p.png").exists()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "random" in out and "digits" in out and "convnet" in out


@pytest.mark.parametrize("argv, needle", [
    (["distill", "--method", "random", "--ipc", "0"], "positive"),
    (["distill", "--method", "random", "--ipc", "500"], "smallest class"),
    (["distill", "--method", "nope", "--ipc", "1"], "unknown method"),
    (["distill", "--method", "random", "--dataset", "cifar11", "--ipc", "1"], "unknown dataset"),
    (["distill", "--method", "random", "--dataset", "cifar10", "--ipc", "1", "--data-root", "/nonexistent"],
     "--download"),
    (["distill", "--method", "random", "--ipc", "1", "--set", "nokey"], "key=value"),
    (["distill", "--method", "random", "--ipc", "x"], "invalid int"),
    (["grid", "--methods", "random", "--ipc", "1", "--arch", "resnet-18", "--out", "/tmp/x"], "unknown architecture"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as info:
        code = main(argv)
        raise SystemExit(code)
    assert info.value.code == 2
    assert needle in _err_line(capsys)


def test_corrupt_set_and_nan_loss_keep_existing_results(tmp_path, random_set, capsys, monkeypatch):
    res = tmp_path / "res"
    assert main(["evaluate", str(random_set), "--protocol", "dc-nodsa", "--epochs", "2", "--models", "1",
                 "--results", str(res), "--no-progress"]) == 0
    before = (res / "results.parquet").read_bytes()
    # --lr is capped at 10 where it enters, so the divergence is made by a loss that turns NaN
    import torch.nn.functional as F
    real_ce = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: real_ce(*a, **k) * float("nan"))
    assert main(["evaluate", str(random_set), "--protocol", "dc-nodsa", "--epochs", "20", "--compile", "off",
                 "--models", "1", "--results", str(res), "--no-progress", "--arch", "convnet"]) == 2
    assert "diverged" in _err_line(capsys)
    monkeypatch.undo()
    blob = random_set.read_bytes()
    random_set.write_bytes(blob[: len(blob) - 10])
    assert main(["evaluate", str(random_set), "--results", str(res)]) == 2
    assert "corrupt" in _err_line(capsys)
    assert (res / "results.parquet").read_bytes() == before


def test_console_entry_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench.cli.main", "distill", "--method", "random", "--ipc", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_grid_runs_its_grid_once_and_writes_reports(tmp_path, monkeypatch):
    """`grid` plans and runs once (a rerun of the same grid would only re-read every cell)."""
    import bench.report.plots
    import bench.run.runner

    calls = []

    def fake_run_grid(spec, out, device, progress=True, full_data=(), tensorboard=None, workers=1, **kwargs):
        calls.append((tuple(spec.methods), tuple(spec.protocols), len(full_data), workers))
        return pd.DataFrame()

    monkeypatch.setattr(bench.run.runner, "run_grid", fake_run_grid)
    monkeypatch.setattr(bench.report.plots, "write_reports", lambda out, df, full=None, log=print: None)
    assert main(["grid", "--methods", "random", "--ipc", "1", "--protocols", "own,idc",
                 "--full-data-epochs", "2", "--out", str(tmp_path / "g"), "--no-progress"]) == 0
    assert len(calls) == 1
    assert calls[0][:2] == (("random",), ("own", "idc")) and calls[0][2] >= 1
    assert calls[0][3] == 1   # through the one orchestrator, with the one worker the grid always used
