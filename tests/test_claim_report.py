"""The claim report: a spec's own cells only, paired differences per seed, files under <out>/<dir>."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

from bench.errors import BenchError
from bench.methods.config import distill_key
from bench.report.claim import claim_rows, difference_records, write_claim_report
from bench.spec.cells import cell_protocols, eval_key, resolved_config
from bench.spec.experiment import parse_spec


def _spec(**claim):
    raw = {"name": "claim-test", "dataset": "digits", "ipc": [5, 10], "seeds": [0, 1, 2], "archs": ["convnet"],
           "evaluation": {"protocol": "idc", "epochs": 200, "models": 1},
           "methods": {"random": {}, "idc": {}, "seq": {}, "dasm": {}},
           "claim": {"references": ["idc", "seq"], **claim}}
    return parse_spec(raw, where="claim-test.toml")


def _key(method, ipc, seed):
    """The key the runner gives the claim spec's cell."""
    spec = _spec()
    grid = spec.grid()
    config = resolved_config(grid, method, ipc)
    (protocol,) = cell_protocols(grid, method, ipc, config)
    return eval_key(distill_key(method, "digits", ipc, seed, config, grid.train_split), "convnet", protocol, 1)


def _row(method, ipc, seed, acc, protocol="idc@200ep", arch="convnet", models=1, dataset="digits", key=None):
    return {"method": method, "dataset": dataset, "ipc": ipc, "seed": seed, "arch": arch, "protocol": protocol,
            "num_models": models, "acc_last": acc, "distill_seconds": 1.0, "eval_seconds": 1.0,
            "cell_key": key or _key(method, ipc, seed)}


def _results():
    # dasm = idc + (1, 2, 3) at IPC 10 and = idc at IPC 5; seq = idc - 1 everywhere
    rows = []
    for seed in (0, 1, 2):
        for ipc in (5, 10):
            idc = 90.0 + seed + ipc / 10
            rows += [_row("idc", ipc, seed, idc), _row("seq", ipc, seed, idc - 1.0),
                     _row("dasm", ipc, seed, idc + (seed + 1 if ipc == 10 else 0.0)),
                     _row("random", ipc, seed, 80.0 + seed)]
    # cells the claim must ignore: another protocol, another architecture, a seed and an IPC it does not have
    # and the same method, IPC and seed under other overrides (another config, so another key)
    rows += [_row("dasm", 10, 0, 0.0, protocol="dc@200ep", key="k1"), _row("dasm", 10, 1, 0.0, arch="resnet18",
                                                                           key="k2"),
             _row("dasm", 10, 7, 0.0, key="k3"), _row("dasm", 20, 0, 0.0, key="k4"),
             _row("dasm", 10, 2, 0.0, models=5, key="k5"), _row("idc", 10, 0, 0.0, key="idc-other-lr")]
    return pd.DataFrame(rows)


def test_claim_rows_are_the_specs_own_cells():
    rows = claim_rows(_results(), _spec())
    assert len(rows) == 24
    assert (rows["acc_last"] > 0).all()


def test_paired_differences_are_exact():
    recs = {(r["method"], r["reference"], r["ipc"]): r for r in difference_records(claim_rows(_results(), _spec()),
                                                                                   ["idc", "seq"])}
    d = recs[("dasm", "idc", 10)]  # differences 1, 2, 3: mean 2, sd 1, t(2) = 4.303 -> half-width 2.484
    assert d["n"] == 3 and d["mean"] == 2.0 and d["half_width"] == pytest.approx(2.484, abs=1e-3)
    assert d["excludes_zero"] is False
    s = recs[("dasm", "seq", 10)]  # 2, 3, 4
    assert s["mean"] == 3.0 and s["low"] == pytest.approx(0.516, abs=1e-3) and s["excludes_zero"] is True
    z = recs[("dasm", "idc", 5)]  # identical sets: zero difference, zero width
    assert z["mean"] == 0.0 and z["half_width"] == 0.0 and z["excludes_zero"] is False
    assert ("random", "idc", 10) not in recs and ("idc", "idc", 10) not in recs
    assert recs[("idc", "seq", 10)]["mean"] == 1.0


def test_report_files_land_under_the_claim_dir_only(tmp_path):
    written = write_claim_report(_results(), _spec(), out=tmp_path, log=lambda _: None)
    assert written and all(p.parent == tmp_path / "claim" for p in written)
    names = {p.name for p in written}
    assert {"saturation.md", "saturation.tex", "saturation.png", "paired_vs_idc.md", "paired_vs_seq.tex",
            "paired_differences.png", "paired_differences.pdf", "paired_differences.csv"} <= names
    table = (tmp_path / "claim" / "paired_vs_seq.md").read_text()
    assert "| dasm | +1.0 ± 0.0 * | +3.0 ± 2.5 * |" in table  # IPC 5: exactly 1 point above seq on every seed
    with open(tmp_path / "claim" / "paired_differences.csv") as f:
        assert len(list(csv.DictReader(f))) == 8  # (dasm, seq) vs idc and (dasm, idc) vs seq, 2 IPCs each
    assert not (tmp_path / "claim" / "README.md").exists()  # the prose is a person's


def test_a_spec_without_claim_writes_nothing(tmp_path):
    spec = _spec()
    spec.claim_references = []
    assert write_claim_report(_results(), spec, out=tmp_path, log=lambda _: None) == []
    assert not (tmp_path / "claim").exists()


@pytest.mark.parametrize("claim,message", [({"dir": "../elsewhere"}, "plain directory name"),
                                           ({"dir": "/tmp/x"}, "plain directory name"),
                                           ({"references": ["mtt"]}, "claim reference"),
                                           ({"references": []}, "non-empty list"),
                                           ({"colour": "red"}, r"\[claim\] key")])
def test_bad_claim_tables_are_one_line_errors(claim, message):
    with pytest.raises(BenchError, match=message):
        _spec(**claim)


@pytest.mark.parametrize("evaluation", [{}, {"protocols": ["own"]}])
def test_a_claim_needs_one_shared_protocol(evaluation):
    raw = {"dataset": "digits", "ipc": [5], "methods": {"idc": {}, "seq": {}}, "claim": {"references": ["idc"]},
           "evaluation": evaluation}
    with pytest.raises(BenchError, match="exactly one shared evaluation protocol"):
        parse_spec(raw)
    raw["evaluation"] = {"protocols": ["own", "idc"]}  # each method's own AND a shared one: the claim uses idc
    assert parse_spec(raw).claim_references == ["idc"]
