"""Shared by the hostile-input properties (tests/test_hostile_properties.py, tests/test_hostile_flags.py):
their settings, the CLI property every example is held to, and the range assertion.

Example::

    @settings(HOSTILE, max_examples=int(60 * SCALE))
    @given(text=FLAG_TEXT)
    def test(text, capsys):
        code, out, error = cli(["evaluate", "s.safetensors", f"--lr={text}"], capsys)
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings

from bench.cli.main import main

# DASM_HOSTILE_SCALE=20: twenty times the examples, freshly random (a local hunt; CI keeps the fixed draw)
SCALE = float(os.environ.get("DASM_HOSTILE_SCALE", "1"))
HOSTILE = settings(deadline=None, derandomize=SCALE == 1, database=None, print_blob=False,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.data_too_large, HealthCheck.filter_too_much])


class Reached(Exception):
    """Raised where training would start: the input was accepted; ``args`` is what training got."""


def fresh(root: Path) -> Path:
    """A new folder per example (function-scoped fixtures are shared by all of a test's examples)."""
    return Path(tempfile.mkdtemp(dir=root))


def tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def cli(argv: list[str], capsys, answers: tuple[int, ...] = ()) -> tuple[int, str, str]:
    """``main(argv)``: 0 (or one of ``answers``, e.g. compare's 1: "they disagree"), or 2 with one
    ``error:`` line (warnings aside) and no traceback; (code, stdout, the error line or "")."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # compare's answer leaves main as SystemExit(1)
        code = exc.code
        assert code in answers, f"SystemExit({code!r}) from main"
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert "Traceback" not in err, err
    if code == 0 or code in answers:
        assert not any(line.startswith("error") for line in lines), err
        event("accepted")
    else:
        assert code == 2, (code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        # --hypothesis-show-statistics: which checks the examples reach
        event(f"refused: {' '.join(w for w in lines[0].split()[1:5] if '/' not in w)}")
    return code, out, lines[0] if code else ""


def is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (ValueError, OverflowError):
        return False


def assert_in(value: Any, low: float, high: float, what: str, low_open: bool = False) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and (value > low if low_open else value >= low) and value <= high
    assert ok, f"{what} = {value!r} was accepted outside [{low}, {high}]"


def refused(argv: list[str], capsys: Any, needle: str) -> str:
    """Run the CLI in-process on ``argv`` and assert the one-line refusal: exit 2, a single
    ``error: ...`` line containing ``needle`` (case-insensitive), no traceback. Returns the line."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, (code, err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert needle.lower() in err.lower(), err
    return err


def refuse_compute(monkeypatch: Any) -> None:
    """Make any distillation, evaluation or cost measurement fail the test: bad input must be
    refused before compute is spent."""
    import bench.methods.registry
    import bench.perf.cost_model
    import bench.train.evaluation

    bench.methods.registry.list_methods()

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("compute was spent before the bad input was refused")

    monkeypatch.setattr(bench.train.evaluation, "evaluate_synthetic", refuse)
    monkeypatch.setattr(bench.methods.registry, "distill", refuse)
    monkeypatch.setattr(bench.perf.cost_model, "measure_costs", refuse)
