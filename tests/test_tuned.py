"""dasm-tuned: shipped Optuna schedules, their scaling to other IPCs, and their provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dasm.tuned as tuned
from bench.errors import BenchError
from bench.methods.registry import default_config
from dasm.base_matcher import base_config
from dasm.segment_schedule import SegmentSchedule
from dasm.tuned import TunedDASMConfig, scaled_schedule, shipped_schedules, tuned_for

ROOT = Path(__file__).resolve().parents[1]


def _best(tmp_path: Path, dataset: str, ipc: int, schedule: str, lr: str = "lr_img=0.05") -> Path:
    path = tmp_path / f"{dataset}-ipc{ipc}.json"
    path.write_text(json.dumps({"method": "dasm", "dataset": dataset, "ipc": ipc, "value": 99.0,
                                "config": {"base": "idc", "base_overrides": lr, "schedule": schedule}}))
    return path


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    _best(tmp_path, "digits", 20, "8@0-1,12@0.31-1")
    _best(tmp_path, "digits", 50, "10@0-1,25@0.2-1,15@0.6-1", "lr_img=0.02")
    monkeypatch.setattr(tuned, "TUNED_DIR", tmp_path)
    tuned.shipped_schedules.cache_clear()
    yield tmp_path
    tuned.shipped_schedules.cache_clear()


@pytest.mark.parametrize("text,ipc", [("8@0-1,12@0.31-1", 5), ("8@0-1,12@0.31-1", 50), ("8@0-1,12@0.31-1", 1),
                                      ("2@0-1,4@0.06-1,7@0.02-1,7@0.12-1", 3),
                                      ("1@0-1,18@0.73-1,1@0.35-1", 10), ("5@0-1,5@0.5-1", 2)])
def test_scaled_schedule_sums_to_ipc_and_keeps_windows(text, ipc):
    src = SegmentSchedule.parse(text)
    out = scaled_schedule(src, ipc)
    out.check_ipc(ipc)
    assert min(out.sizes) >= 1
    assert set(out.windows) <= set(src.windows)
    assert out.windows[0] == src.windows[0]  # segment 1 (ranked by nothing) is always kept
    if src.num_segments > ipc > 1:  # the hardest (last) segments are the ones kept
        assert out.windows[1:] == src.windows[len(src.windows) - (ipc - 1):]


def test_scaled_schedule_follows_the_shares():
    assert scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 20).to_string() == "8@0-1,12@0.31-1"
    assert scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 50).to_string() == "20@0-1,30@0.31-1"
    # one image each first, then the remaining 3 by shares 0.4 / 0.6 -> 1.2 / 1.8 -> 1 / 2 (+1 by remainder)
    assert scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 5).sizes == (2, 3)
    assert scaled_schedule(SegmentSchedule.parse("8@0-1,12@0.31-1"), 1).to_string() == "1@0-1"
    with pytest.raises(BenchError):
        scaled_schedule(SegmentSchedule.parse("8@0-1"), 0)


def test_config_takes_the_nearest_tuned_ipc_on_a_log_scale(shipped):
    exact = default_config("dasm-tuned", "digits", 20)
    assert isinstance(exact, TunedDASMConfig)
    assert exact.schedule == "8@0-1,12@0.31-1" and exact.base == "idc"
    assert base_config("idc", "digits", 12, exact.base_overrides).lr_img == 0.05  # the study's rate, applied
    assert tuned_for("digits", 10).ipc == 20 and tuned_for("digits", 40).ipc == 50
    # sqrt(20 * 50) = 31.6: 31 is nearer 20, 32 nearer 50 on a log scale
    assert tuned_for("digits", 31).ipc == 20 and tuned_for("digits", 32).ipc == 50
    assert default_config("dasm-tuned", "digits", 10).schedule == "4@0-1,6@0.31-1"
    # everything else is DASM's digits config
    plain = default_config("dasm", "digits", 20)
    assert exact.difficulty_epochs == plain.difficulty_epochs and exact.fix_iter == plain.fix_iter


def test_a_dataset_without_a_study_is_one_line_error(shipped):
    config = default_config("dasm-tuned", "mnist5k", 10)  # listing and spec checks still work
    with pytest.raises(BenchError, match=r"no tuned schedule for 'mnist5k'.*dasm-bench sweep.*IPC 10\)$"):
        config.validate()


def test_a_broken_shipped_file_is_one_line_error(shipped):
    (shipped / "digits-ipc99.json").write_text("{not json")
    tuned.shipped_schedules.cache_clear()
    with pytest.raises(BenchError, match="not a sweep's best.json"):
        shipped_schedules()


def test_shipped_schedules_are_the_committed_study_exports():
    """Each shipped file is byte-for-byte a committed study's best.json (no hand-edited schedule)."""
    files = sorted(tuned.TUNED_DIR.glob("*.json"))
    assert files, "dasm-tuned ships no schedule"
    for path in files:
        d = json.loads(path.read_text())
        source = ROOT / "results" / d["dataset"] / "sweeps" / d["study"] / "best.json"
        assert source.is_file(), f"{path.name}: its study export {source} is not committed"
        assert path.read_bytes() == source.read_bytes()
        assert "test" not in d["objective"]  # tuned on the validation split
