"""Cross-architecture tables and `dasm-bench plot`: everything is rebuilt from stored results."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.cli.main import main
from bench.methods.registry import DistillRequest, distill
from bench.report.cross_arch import (
    cross_arch_latex,
    cross_arch_markdown,
    cross_arch_settings,
    cross_arch_summary,
    write_cross_arch_tables,
)
from bench.store.results import ResultsTable


def _row(method, arch, seed, acc, ipc=10, dataset="digits", std=0.5, path=""):
    return {"cell_key": f"{method}-{arch}-{seed}-{ipc}-{dataset}", "method": method, "dataset": dataset, "ipc": ipc,
            "seed": seed, "arch": arch, "protocol": "dc@200ep", "num_models": 1, "acc_last": acc,
            "acc_last_std": std, "acc_val": acc + 1, "acc_val_std": std, "distill_seconds": 1.0,
            "eval_seconds": 1.0, "code_version": "test", "config_hash": f"{method}{seed}{ipc}",
            "synthetic_path": path}


@pytest.fixture()
def results():
    rows = [
        _row("random", "convnet", 0, 80.0), _row("random", "convnet", 1, 82.0),
        _row("random", "resnet18", 0, 70.0), _row("random", "resnet18", 1, 74.0),
        _row("dasm", "convnet", 0, 90.0), _row("dasm", "convnet", 1, 92.0),
        _row("dasm", "resnet18", 0, 88.0), _row("dasm", "resnet18", 1, 86.0),
        _row("dasm", "vgg11_dc", 0, 60.0),  # a single seed: the std is the spread over that row's models
        _row("random", "convnet", 0, 50.0, ipc=1),  # another IPC on ConvNet only: not a cross-arch setting
        _row("herding", "convnet", 0, 85.0),  # a saturation-run method on ConvNet only: not in the table
        _row("random", "convnet", 2, 10.0),  # a seed never evaluated on unseen architectures: left out
    ]
    return pd.DataFrame(rows)


def test_summary_means_stds_and_drops(results):
    s = cross_arch_summary(results, "digits", 10).set_index(["method", "arch"])
    assert s.loc[("random", "convnet"), "mean"] == 81.0
    assert s.loc[("random", "resnet18"), "std"] == pytest.approx(math.sqrt(8.0))  # sample std of 70, 74
    assert s.loc[("random", "resnet18"), "drop"] == pytest.approx(81.0 - 72.0)
    assert s.loc[("dasm", "resnet18"), "drop"] == pytest.approx(91.0 - 87.0)
    assert s.loc[("dasm", "vgg11_dc"), "std"] == 0.5 and s.loc[("dasm", "vgg11_dc"), "seeds"] == 1
    assert s.loc[("dasm", "convnet"), "drop"] == 0.0
    # methods in paper order (coresets first), ConvNet first among architectures
    order = cross_arch_summary(results, "digits", 10)
    assert list(dict.fromkeys(order["method"])) == ["random", "dasm"]
    assert order["arch"].iloc[0] == "convnet"
    assert cross_arch_settings(results) == [("digits", 10)]
    assert "herding" not in set(order["method"]) and s.loc[("random", "convnet"), "seeds"] == 2


def test_markdown_and_latex_bold_the_best_per_column(results):
    summary = cross_arch_summary(results, "digits", 10)
    md = cross_arch_markdown(summary)
    lines = md.strip().splitlines()
    assert lines[0] == "| method | ConvNet | ResNet-18 | VGG-11 | mean drop |"
    random_line = next(ln for ln in lines if ln.startswith("| random"))
    dasm_line = next(ln for ln in lines if ln.startswith("| dasm"))
    # 95% t intervals over 2 seeds: t_{0.975,1} = 12.706; sd of 80, 82 is sqrt(2) -> 12.7
    assert "| 81.0 ± 12.7 |" in random_line and "72.0 ± 25.4 (−9.0) ≈" in random_line  # tie: diffs 18, 12
    assert "**91.0 ± 12.7**" in dasm_line and "**87.0 ± 12.7 (−4.0)**" in dasm_line
    assert "| **60.0 (−31.0)** |" in dasm_line  # one seed: no interval
    # mean drop: dasm (4 + 31) / 2 = 17.5 is worse than random's 9.0, so random's is bold
    assert random_line.endswith("| **9.0** |") and dasm_line.endswith("| 17.5 |")
    assert "| - |" in random_line  # random was not evaluated on VGG-11
    tex = cross_arch_latex(summary, caption="digits ± test")
    assert r"\textbf{91.0 $\pm$ 12.7}" in tex and r"\toprule" in tex and r"$\pm$ test" in tex
    assert "72.0 $\\pm$ 25.4 ($-$9.0) $^{\\approx}$" in tex and "±" not in tex


def test_runs_that_did_not_train_are_counted_and_marked(results):
    # digits has 10 classes: a last-epoch accuracy under 15% is a run that never left chance level
    rows = results.copy()
    rows.loc[len(rows)] = _row("random", "convnext_atto", 0, 9.8)
    rows.loc[len(rows)] = _row("random", "convnext_atto", 1, 90.0)
    s = cross_arch_summary(rows, "digits", 10).set_index(["method", "arch"])
    assert s.loc[("random", "convnext_atto"), "untrained"] == 1
    assert s.loc[("random", "resnet18"), "untrained"] == 0
    assert s.loc[("random", "convnext_atto"), "mean"] == pytest.approx((9.8 + 90.0) / 2)  # kept in the mean
    md = cross_arch_markdown(cross_arch_summary(rows, "digits", 10))
    assert "†1" in next(ln for ln in md.splitlines() if ln.startswith("| random"))
    assert "†" not in next(ln for ln in md.splitlines() if ln.startswith("| dasm"))
    assert r"$^\dagger$1" in cross_arch_latex(cross_arch_summary(rows, "digits", 10))
    # an unregistered dataset has no known chance level: nothing is marked
    other = rows.assign(dataset="mine")
    assert cross_arch_summary(other, "mine", 10)["untrained"].sum() == 0


def test_write_tables(tmp_path, results):
    paths = write_cross_arch_tables(results, tmp_path)
    assert sorted(p.name for p in paths) == ["cross_arch_digits_ipc10.csv", "cross_arch_digits_ipc10.md",
                                             "cross_arch_digits_ipc10.tex", "cross_arch_digits_ipc10_heatmap.pdf",
                                             "cross_arch_digits_ipc10_heatmap.png"]
    csv = pd.read_csv(tmp_path / "cross_arch_digits_ipc10.csv")
    assert set(csv.columns) >= {"method", "arch", "mean", "std", "seeds", "drop", "dataset", "ipc"}
    assert len(csv) == 5


def test_plot_regenerates_every_table_and_figure_from_stored_results(tmp_path, digits):
    out = tmp_path / "res"
    rows = []
    tiny = {"iterations": 1, "batch_real": 16}
    sets = {
        "random": distill("random", DistillRequest(digits, ipc=2, seed=0)),
        "dasm": distill("dasm", DistillRequest(digits, ipc=2, seed=0, progress=False),
                        overrides={"base": "dm", "base_overrides": tiny, "difficulty_epochs": 1,
                                   "real_ranking_epochs": 1}),
    }
    for method, syn in sets.items():
        rel = f"synthetic/{syn.metadata['config_hash']}.safetensors"
        syn.save(out / rel)
        rows += [_row(method, arch, 0, acc, ipc=2, path=rel)
                 for arch, acc in (("convnet", 80.0), ("resnet18", 70.0))]
    ResultsTable(out).append(rows)
    (out / "full_data.json").write_text('{"dataset": "digits", "arch": "convnet", "protocol": "dc-nodsa@5ep", '
                                        '"acc": 97.0}')
    assert main(["plot", str(out)]) == 0
    assert not (out / "table_acc_best.md").exists()  # no test-selected "best" table
    for name in ("table_acc_last.md", "saturation.png", "saturation.pdf",
                 "cross_arch_digits_ipc2.md", "cross_arch_digits_ipc2.tex", "cross_arch_digits_ipc2.csv"):
        assert (out / name).stat().st_size > 0, name
    pictures = sorted(p.name for p in (out / "figures" / "synthetic").iterdir())
    assert len(pictures) == 4 and {p.split("-")[0] for p in pictures} == {"random", "dasm"}  # png + pdf each
    diagnostics = sorted(p.suffix for p in (out / "figures" / "dasm").iterdir())
    assert diagnostics == [".pdf", ".png"]  # only the DASM set carries per-segment diagnostics
    # the Markdown accuracy table holds ConvNet rows only, one column per IPC
    assert "80.0 ± 0.0" in (out / "table_acc_last.md").read_text()
    assert "70.0" not in (out / "table_acc_last.md").read_text()
    # plotting again rebuilds tables from the rows (no recomputation, no error on existing pictures)
    (out / "cross_arch_digits_ipc2.md").unlink()
    assert main(["plot", str(out)]) == 0 and (out / "cross_arch_digits_ipc2.md").exists()
