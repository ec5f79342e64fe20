"""The cell has one owner (issue 27): bench/spec/cells.py enumerates a grid's cells, keys them and
resolves their protocols, and every consumer (runner, --plan, claim report, budget ladder) agrees
with it, refused sets included."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.methods.config import distill_key
from bench.methods.registry import default_config
from bench.report.claim import claim_rows
from bench.run.experiment_run import plan_summary
from bench.run.runner import plan_tasks
from bench.run.scheduling import Progress
from bench.spec.budget import BudgetSpec
from bench.spec.budget import cell_keys as budget_cell_keys
from bench.spec.cells import Cell, cell_keys, cells, method_protocol, plan_sets
from bench.spec.experiment import load_spec
from bench.spec.grid import GridSpec
from bench.store.results import ResultsTable
from bench.vocabulary import OWN_PROTOCOL, normalise_protocol

ROOT = Path(__file__).resolve().parents[1]


def test_cells_are_sets_times_architectures_times_protocols_in_a_fixed_order():
    grid = GridSpec(methods=["random", "dm"], dataset="digits", ipcs=[1, 10], seeds=[0, 1], archs=["convnet", "mlp"],
                    protocols=["own", "idc"])
    planned = list(plan_sets(grid))
    assert [(p.method, p.ipc, p.seed) for p in planned] == [(m, i, s) for m in ("random", "dm") for i in (1, 10)
                                                            for s in (0, 1)]
    dm = next(p for p in planned if p.method == "dm")
    assert [(c.arch, c.protocol.name) for c in dm.cells] == [("convnet", "dc"), ("convnet", "idc"),
                                                             ("mlp", "dc"), ("mlp", "idc")]
    # the set key is the one formula, and a cell's key is reproducible from its parts
    assert dm.distill_key == distill_key("dm", "digits", 1, 0, default_config("dm", "digits", 1), "full")
    cell = dm.cells[0]
    assert cell.key == Cell(cell.method, cell.ipc, cell.seed, cell.arch, cell.protocol, cell.num_models,
                            cell.distill_key).key
    assert len(cell_keys(grid)) == sum(len(p.cells) for p in planned) == len(list(cells(grid))) == 8 * 4


def test_a_refused_set_is_planned_with_its_reason_and_has_no_cells(tmp_path, monkeypatch):
    from baselines.mtt import MTTConfig

    # MTT above IPC 50 on CIFAR has no published setting: its config says so (here on digits, IPC 1)
    monkeypatch.setattr(MTTConfig, "for_setting", classmethod(lambda cls, d, i: cls(no_reference="no published row")))
    grid = GridSpec(methods=["random", "mtt"], dataset="digits", ipcs=[1], seeds=[0, 1])
    refused = [p for p in plan_sets(grid) if p.method == "mtt"]
    assert [p.refused for p in refused] == ["no published row"] * 2 and all(not p.cells for p in refused)
    assert {c.method for c in cells(grid)} == {"random"}
    # the runner plans exactly the enumerator's cells, and logs the refusal once per (method, IPC)
    logged: list[str] = []
    progress = Progress(0, False, "t", logged.append)
    tasks, already = plan_tasks(grid, tmp_path, ResultsTable(tmp_path), "cpu", None, progress)
    planned = sorted(t.claim for task in tasks for t in task.on_done(None)) if tasks else []
    assert already == 0 and planned == sorted(c.key for c in cells(grid))
    assert [line for line in logged if "skipping" in line] == ["skipping mtt ipc=1: no published row"]


def test_plan_claim_and_budget_read_the_same_cells_as_the_runner(tmp_path):
    spec = load_spec("claim-digits", warn=lambda m: None)
    plan = plan_summary(spec, tmp_path)
    sets, keys = len(list(plan_sets(spec.grid()))), len(cell_keys(spec.grid()))
    assert f"{sets} sets (0 stored), {keys} evaluation cells" in plan
    # the claim report keeps a row only when its key is one of the spec's cells
    import pandas as pd

    keys = sorted(cell_keys(spec.grid()))
    rows = pd.DataFrame({"cell_key": [keys[0], "not-a-cell"], "arch": "convnet", "protocol": "idc@200ep"})
    assert claim_rows(rows, spec)["cell_key"].tolist() == [keys[0]]
    # a budget rung's cells are its grid's cells
    ladder = BudgetSpec(methods=["dm"], dataset="digits", ipcs=[10], seeds=[0, 1], rungs=[1, 2])
    assert sorted(budget_cell_keys(ladder, "dm", 10, 2).values()) == sorted(cell_keys(ladder.grid(2, 10)))


def test_one_sentinel_for_each_methods_own_protocol():
    assert normalise_protocol("default") == normalise_protocol("own") == OWN_PROTOCOL == "own"
    legacy = GridSpec(methods=["dc"], dataset="mnist5k", ipcs=[1], protocol="default", protocols=["default", "idc"])
    assert legacy.protocol == OWN_PROTOCOL and legacy.protocols == [OWN_PROTOCOL, "idc"]
    own = GridSpec(methods=["dc"], dataset="mnist5k", ipcs=[1])
    # the one resolver: DC's own protocol on MNIST-like data is the reference's dc-aug
    assert method_protocol(own, "dc", default_config("dc", "mnist5k", 1)).name.startswith("dc-aug")


def test_only_the_cell_module_enumerates_a_grid():
    """A grep for the enumeration finds one: no other harness module loops over a grid's seeds
    (``for seed in <spec>.seeds``) to build keys; they iterate bench.spec.cells instead."""
    found = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.iter, ast.Attribute) \
                    and node.iter.attr == "seeds" and isinstance(node.target, ast.Name):
                body = ast.unparse(node)
                if "distill_key" in body or "eval_key" in body:
                    found.append(str(path.relative_to(ROOT)))
    assert found == ["bench/spec/cells.py"], found
