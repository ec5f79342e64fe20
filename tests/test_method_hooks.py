"""Methods plug into the harness through hooks on their registered spec: ``dasm-bench plot`` draws a
method's diagnostics figure (and ``dasm-bench sweep`` gets its objective) without naming the method."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from bench.methods import registry
from bench.methods.registry import DistillRequest, distill, get_method, register_method
from bench.report.plots import set_figures

DRAWN: list[tuple[str, Path]] = []


def toy_diagnostics(syn, path) -> list[Path]:
    """The toy method's diagnostics hook: records the call and writes a file where asked."""
    DRAWN.append((syn.metadata["method"], Path(path)))
    target = Path(path).with_suffix(".png")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"\x89PNG toy")
    return [target]


@dataclass
class ToyConfig:
    pass


@pytest.fixture()
def toy_method(monkeypatch):
    # registered into a copy of the table, which the teardown puts back: no other test sees the toy.
    # Every built-in is registered first, so none lands only in the copy (a module registers once).
    registry.list_methods()
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))

    @register_method("toy-hooked", ToyConfig, kind="coreset", group="toys",
                     diagnostics="test_method_hooks:toy_diagnostics")
    def toy(request: DistillRequest, config: ToyConfig):
        return distill("random", DistillRequest(request.data, request.ipc, request.seed))

    return "toy-hooked"


def test_hooks_resolve_from_module_and_attribute():
    from dasm.diagnostics import diagnostics_figures

    assert get_method("dasm").hook("diagnostics") is diagnostics_figures
    assert get_method("seq").hook("diagnostics") is diagnostics_figures
    assert get_method("dm").hook("diagnostics") is None and get_method("dm").hook("search") is None
    with pytest.raises(TypeError, match="module:attribute"):
        register_method("bad-hook", ToyConfig, diagnostics="dasm.diagnostics.diagnostics_figures")


def test_plot_draws_a_registered_methods_diagnostics_through_its_hook(tmp_path, digits, toy_method):
    DRAWN.clear()
    rows = []
    for method in (toy_method, "imported-thing"):  # a registered method with a hook, and a name with none
        syn = distill("random", DistillRequest(digits, ipc=2, seed=0))
        syn.metadata["method"] = method
        syn.save(tmp_path / "synthetic" / f"{method}.safetensors")
        rows.append({"method": method, "dataset": "digits", "ipc": 2, "seed": 0, "config_hash": "abcdef0123",
                     "synthetic_path": f"synthetic/{method}.safetensors"})
    written = set_figures(pd.DataFrame(rows), tmp_path, log=lambda m: None)
    diag = tmp_path / "figures" / "toys" / "toy-hooked-digits-ipc2-s0-abcdef01.png"
    assert diag in written and diag.read_bytes() == b"\x89PNG toy"          # drawn by the hook, in its group's folder
    assert DRAWN == [("toy-hooked", diag.with_suffix(""))]
    pictures = sorted(p.name for p in (tmp_path / "figures" / "synthetic").iterdir())
    assert pictures == ["imported-thing-digits-ipc2-s0-abcdef01.pdf", "imported-thing-digits-ipc2-s0-abcdef01.png",
                        "toy-hooked-digits-ipc2-s0-abcdef01.pdf", "toy-hooked-digits-ipc2-s0-abcdef01.png"]
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["synthetic", "toys"]
    # a second run keeps what exists: neither the picture nor the diagnostics are drawn again
    assert set_figures(pd.DataFrame(rows), tmp_path, log=lambda m: None) == [] and len(DRAWN) == 1


def test_the_toy_method_is_gone_after_its_test():
    assert "toy-hooked" not in registry._METHODS


def test_a_registered_pairing_gets_its_difference_figure_without_the_harness_naming_it(tmp_path, monkeypatch):
    """A toy method that registers ``paired_against`` gets ``<name>_difference_own.png`` from the
    ordinary report writer; a method that registers none gets no such figure (issue 27)."""
    from bench.report.plots import write_reports

    registry.list_methods()
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))

    @register_method("toy-paired", ToyConfig, kind="coreset", group="toys",
                     paired_against=(("random", "toy − random"),))
    def toy(request: DistillRequest, config: ToyConfig):
        return distill("random", DistillRequest(request.data, request.ipc, request.seed))

    rows = [{"cell_key": f"{m}-{ipc}-{seed}", "method": m, "dataset": "digits", "ipc": ipc, "seed": seed,
             "arch": "convnet", "protocol": "dc@2ep", "num_models": 1,
             "acc_last": base + seed + (m == "toy-paired") * 3.0,
             "acc_last_std": 0.0, "distill_seconds": 1.0, "eval_seconds": 1.0, "code_version": "t",
             "config_hash": f"{m}{seed}{ipc}", "synthetic_path": ""}
            for m in ("random", "toy-paired") for ipc, base in ((1, 40.0), (10, 80.0)) for seed in range(3)]
    written = {p.name for p in write_reports(tmp_path, pd.DataFrame(rows))}
    assert "toy-paired_difference_own.png" in written
    assert not any(name.startswith("random_difference") for name in written)
    assert get_method("dasm").paired_against[0][0] == "idc"   # DASM's pairs live on its registration too
