"""Property-based tests of hostile numbers given on the command line (issue 26): any text for a
numeric flag or a ``--set`` config field is parsed into its range, or refused in one line that
states the range; the range checks of ``bench.bounds`` themselves. Same settings and CLI property
as tests/test_hostile_properties.py (``tests/hostile_cli.py``); parse-only: a stub stands where a
command would start its work.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hostile_cli import HOSTILE, SCALE, Reached, assert_in, cli, is_number
from hostile_inputs import FLAG_TEXT, JSON_VALUES
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from bench.bounds import (
    MAX_CONFIG_FLOAT,
    MAX_CONFIG_INT,
    MAX_COUNT,
    MAX_EPOCHS,
    MAX_FACTOR,
    MAX_IPC,
    MAX_LR,
    MAX_MODELS,
    MAX_SEED,
    MAX_WORKERS,
)

# ----------------------------------------------------------------------------- (6) command-line numbers

# (argv before the flag, flag, parsed attribute, low, high, low_open, is a list)
FLAGS = [
    (["distill", "--method", "random"], "--ipc", "ipc", 1, MAX_IPC, False, False),
    (["distill", "--method", "random", "--ipc", "1"], "--seed", "seed", 0, MAX_SEED, False, False),
    (["evaluate", "s.safetensors"], "--lr", "lr", 0, MAX_LR, True, False),
    (["evaluate", "s.safetensors"], "--epochs", "epochs", 1, MAX_EPOCHS, False, False),
    (["evaluate", "s.safetensors"], "--models", "models", 1, MAX_MODELS, False, False),
    (["grid", "--methods", "random", "--out", "g"], "--ipc", "ipc", 1, MAX_IPC, False, True),
    (["grid", "--methods", "random", "--ipc", "1", "--out", "g"], "--seeds", "seeds", 0, MAX_SEED, False, True),
    (["run", "spec"], "--workers", "workers", 1, MAX_WORKERS, False, False),
    (["run", "spec"], "--threads", "threads", 1, MAX_WORKERS, False, False),
    (["sweep", "--ipc", "1"], "--trials", "trials", 1, MAX_COUNT, False, False),
    (["sweep", "--ipc", "1"], "--timeout", "timeout", 0, 1e9, True, False),
    (["budget", "--methods", "dm", "--ipc", "1", "--out", "b"], "--max-hours", "max_hours", 0, 1e6, True, False),
    (["compare", "a", "b"], "--k-std", "k_std", 0, 1e6, True, False),
    (["import", "src", "--dataset", "digits", "--out", "o"], "--index", "index", 0, MAX_COUNT, False, False),
]


@settings(HOSTILE, max_examples=int(150 * SCALE))
@given(flag=st.sampled_from(FLAGS), text=FLAG_TEXT)
@example(flag=FLAGS[0], text="1.5")  # was "invalid int value: '1.5'", no range
@example(flag=FLAGS[2], text="-1")  # was "expected a positive finite number", no upper bound
def test_numeric_flags(flag, text: str, capsys, monkeypatch):
    """Any text for a numeric flag: parsed to a value inside its range, or one line that states the range."""
    import bench.cli.main

    prefix, name, attr, low, high, low_open, listed = flag
    seen = []
    monkeypatch.setitem(bench.cli.main.COMMANDS, prefix[0], lambda args: seen.append(getattr(args, attr)))
    code, _, error = cli(prefix + [f"{name}={text}"], capsys)
    if code == 2 and is_number(text):  # a number out of range, or of the wrong kind: the message says the range
        bound = f"{high:g}" if isinstance(high, float) else str(high)
        assert bound in error, f"{name}={text!r}: {error!r} does not state the range (up to {bound})"
    if code == 0:
        values = seen[0] if listed else [seen[0]]
        assert values and len(set(values)) == len(values), values
        for value in values:
            assert isinstance(value, float if isinstance(high, float) else int), value
            assert_in(value, low, high, name, low_open)


# what each numeric config field means, by name: the range any value given for it must lie in
# (low, high, low_open, high_open); a name missing here is a count >= 1
_FIELD_MEANING: dict[str, tuple[float, float, bool, bool]] = {
    **{name: (0, 1, False, True) for name in ("momentum", "momentum_img", "momentum_net", "drop_fraction",
                                              "window_shift")},
    "mix_p": (0, 1, False, False),
    **{name: (0, math.inf, True, False) for name in ("lr", "lr_img", "lr_net", "lr_teacher", "expert_lr", "mix_beta")},
    **{name: (0, math.inf, False, False) for name in ("lr_lr", "weight_decay", "weight_decay_net", "iterations",
                                                      "early", "n_data", "net_epoch", "expansion_iterations",
                                                      "min_start_epoch")},
    "expert_seed": (0, MAX_SEED, False, False),
    "factor": (1, MAX_FACTOR, False, False),  # IDC's decoder factor: a set holds at most MAX_FACTOR
}


def _numeric_fields() -> list[tuple[str, str]]:
    import dataclasses
    import typing

    from bench.methods.registry import default_config, list_methods

    found = []
    for method in list_methods():
        config = default_config(method, "digits", 1)
        hints = typing.get_type_hints(type(config))
        found += [(method, f.name) for f in dataclasses.fields(config)
                  if {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],))
                  and bool not in (typing.get_args(hints[f.name]) or (hints[f.name],))]
    return found


@pytest.fixture
def no_distill(monkeypatch, tmp_path):
    import bench.methods.registry

    bench.methods.registry.list_methods()  # every method module imported before patching (see test_cli_bad_input)
    monkeypatch.chdir(tmp_path)

    def stub(method, request, overrides=None):
        raise Reached(method, overrides)

    monkeypatch.setattr(bench.methods.registry, "distill", stub)


def _check_field(method: str, name: str, overrides: dict[str, Any]) -> None:
    """The config distill got holds ``name`` as its declared kind, inside what the field means."""
    import typing

    from bench.methods.registry import apply_overrides, default_config

    config = apply_overrides(default_config(method, "digits", 1), overrides)
    value = getattr(config, name)
    if value is None:
        return
    hint = typing.get_type_hints(type(config))[name]
    declared = typing.get_args(hint) or (hint,)
    assert type(value) in declared, f"{method}.{name} = {value!r} accepted as a {type(value).__name__}"
    low, high, low_open, high_open = _FIELD_MEANING.get(name, (1, math.inf, False, False))
    assert value < high or (value == high and not high_open), f"{method}.{name} = {value!r} accepted"
    cap = MAX_CONFIG_FLOAT if isinstance(value, float) else MAX_CONFIG_INT
    assert_in(value, low, min(high, cap), f"{method}.{name}", low_open)


@settings(HOSTILE, max_examples=int(120 * SCALE))
@given(field=st.sampled_from(_numeric_fields()), text=FLAG_TEXT)
@example(field=("idc", "mix_beta"), text="-1")  # accepted, then a ValueError traceback mid-distillation
@example(field=("idc", "momentum_net"), text="5")  # accepted and distilled with a diverging optimiser
@example(field=("mtt", "expert_seed"), text="-1")  # beyond numpy's seed range
def test_config_fields_by_set(field: tuple[str, str], text: str, capsys, no_distill):
    """``distill --set FIELD=TEXT`` for every numeric field of every method: refused in one line, or
    distilled with a value inside what the field means (a momentum in [0, 1), a rate > 0, ...)."""
    method, name = field
    try:
        cli(["distill", "--method", method, "--ipc", "1", "--set", f"{name}={text}", "--no-progress"], capsys)
    except Reached as reached:
        event("accepted")
        _check_field(method, name, reached.args[1])


@settings(HOSTILE, max_examples=int(80 * SCALE))
@given(field=st.sampled_from(_numeric_fields()), value=JSON_VALUES)
@example(field=("dm", "iterations"), value=True)  # distilled with 1 iteration: JSON true read as the number 1
def test_config_fields_by_file(field: tuple[str, str], value: Any, capsys, no_distill, tmp_path):
    """``distill --config FILE`` (JSON: typed values, as a spec's [methods] table gives them): a bool,
    list, object, null or out-of-range number for a numeric field is refused in one line."""
    import json
    import tempfile

    method, name = field
    config = Path(tempfile.mkdtemp(dir=tmp_path)) / "config.json"
    config.write_text(json.dumps({name: value}))
    try:
        cli(["distill", "--method", method, "--ipc", "1", "--config", str(config), "--no-progress"], capsys)
    except Reached as reached:
        event("accepted")
        assert not isinstance(value, (bool, list, dict)), f"{method}.{name} = {value!r} accepted"
        _check_field(method, name, reached.args[1])


@settings(HOSTILE, max_examples=int(200 * SCALE))
@given(value=JSON_VALUES, bounds=st.sampled_from([(0, MAX_SEED), (1, MAX_IPC), (1, MAX_FACTOR),
                                                 (-MAX_CONFIG_INT, MAX_CONFIG_INT)]))
@example(value=-1, bounds=(0, MAX_SEED))  # the range read "[0, 4.29497e+09]"
def test_bounds_state_the_exact_range(value: Any, bounds: tuple[int, int]):
    """``check_int``, behind every sidecar, cell and config integer: the value itself when it is an
    integer in range, else a one-line error with the exact range."""
    from bench.bounds import check_int
    from bench.errors import BenchError

    low, high = bounds
    try:
        got = check_int(value, "x", low, high)
    except BenchError as exc:
        assert f"[{low}, {high}]" in str(exc) and "\n" not in str(exc), str(exc)
    else:
        assert type(got) is int and got == value and low <= got <= high and not isinstance(value, bool)
