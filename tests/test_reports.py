"""Paper tables and figures from stored rows: intervals, bold best, tie and significance marks,
same-protocol random and full data, registry order, TrueType fonts."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.report.plots import write_reports
from bench.report.style import method_style, ordered_methods
from bench.report.tables import own_rows, protocol_views, saturation_cells
from bench.store.full_data import read_full_data
from bench.store.results import ResultsTable

# per (method, protocol): accuracies of seeds 0, 1, 2 at IPC 10 (IPC 1 is these minus 10)
VALUES = {
    ("random", "dc@2ep"): [85.0, 86.0, 87.0],
    ("random", "idc@2ep"): [90.0, 90.0, 90.0],
    ("dm", "dc@2ep"): [88.0, 89.0, 90.0],      # +3.0 over dc random on every seed
    ("dm", "idc@2ep"): [90.0, 91.0, 92.0],
    ("idc", "idc@2ep"): [95.0, 95.5, 96.0],
    ("seq", "idc@2ep"): [96.8, 97.6, 97.9],    # differs from dasm by 0.2, -0.1, 0.1: a tie
    ("dasm", "idc@2ep"): [97.0, 97.5, 98.0],   # best; idc + 2.0 on every seed
}


def _rows():
    rows = []
    for (method, protocol), accs in VALUES.items():
        for ipc, shift in ((1, -10.0), (10, 0.0)):
            for seed, acc in enumerate(accs):
                rows.append({"cell_key": f"{method}-{protocol}-{ipc}-{seed}", "method": method, "dataset": "digits",
                             "ipc": ipc, "seed": seed, "arch": "convnet", "protocol": protocol, "num_models": 1,
                             "acc_last": acc + shift, "acc_last_std": 0.0, "acc_val": acc + shift,
                             "acc_val_std": 0.0, "distill_seconds": 0.001 if method == "random" else 10.0 * ipc,
                             "eval_seconds": 1.0, "code_version": "t", "config_hash": f"{method}{seed}{ipc}",
                             "synthetic_path": ""})
    return rows


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    ResultsTable(out).append(_rows())
    (out / "full_data.json").write_text(json.dumps({"by_protocol": {
        "dc@2ep": {"dataset": "digits", "protocol": "dc@2ep", "acc": 99.0},
        "idc@2ep": {"dataset": "digits", "protocol": "idc@2ep", "acc": 99.5}}}))
    write_reports(out, log=lambda m: None, pictures=False)
    return out


def test_views_pick_each_methods_own_protocol_and_the_shared_one():
    df = pd.DataFrame(_rows())
    views = dict(protocol_views(df))
    assert list(views) == ["own", "idc@2ep"]
    own = views["own"].groupby("method")["protocol"].unique().map(list).to_dict()
    assert own["dm"] == ["dc@2ep"] and own["random"] == ["dc@2ep"] and own["dasm"] == ["idc@2ep"]
    assert set(views["idc@2ep"]["protocol"]) == {"idc@2ep"}
    assert ordered_methods(own_rows(df)["method"]) == ["random", "dm", "idc", "seq", "dasm"]  # registry order


def test_saturation_table_has_intervals_bold_best_ties_and_same_protocol_full_data(reports):
    md = (reports / "saturation_own.md").read_text()
    line = {row.split("|")[1].strip(): row for row in md.splitlines() if row.startswith("| ")}
    # dasm at IPC 10: mean 97.5, sd 0.5, t_{0.975,2} = 4.303 -> half-width 1.242
    assert "**97.5 ± 1.2**" in line["dasm"]
    assert "97.4 ± 1.4 ≈" in line["seq"]          # its paired CI to the best includes zero
    assert "95.5 ± 1.2 ≈" not in line["idc"] and "95.5 ± 1.2" in line["idc"]  # 2 points below on every seed
    assert line["full data (dc@2ep)"].count("99.0") == 2 and line["full data (idc@2ep)"].count("99.5") == 2
    methods = [r.split("|")[1].strip() for r in md.splitlines()[4:]]
    assert methods[:5] == ["random", "dm", "idc", "seq", "dasm"]
    assert "n = 3 seeds x 1 model per seed; 539 test images" in md and "dc@2ep: dm, random" in md
    shared = (reports / "saturation_idc-2ep.md").read_text()
    assert "protocol idc@2ep for every method" in shared and "full data (idc@2ep)" in shared
    assert "full data (dc@2ep)" not in shared and "91.0 ± 2.5" in shared  # dm under idc
    tex = (reports / "saturation_own.tex").read_text()
    assert r"\textbf{97.5 $\pm$ 1.2}" in tex and r"$^{\approx}$" in tex and tex.count(r"\midrule") >= 3


def test_improvement_table_pairs_with_random_under_the_same_protocol(reports):
    md = (reports / "improvement_own.md").read_text()
    ior, gap = md.split("share of the random-to-full-data gap")
    line = {row.split("|")[1].strip(): row for row in ior.splitlines() if row.startswith("| ")}
    assert "+3.0 ± 0.0 *" in line["dm"]             # dm(dc) - random(dc), not random(idc)
    assert "+7.5 ± 1.2 *" in line["dasm"]           # dasm(idc) - random(idc)
    assert "random" not in line
    gap_line = {row.split("|")[1].strip(): row for row in gap.splitlines() if row.startswith("| ")}
    assert "0.79 ± 0.13 *" in gap_line["dasm"]  # (97.5 - 90) / (99.5 - 90) per seed: .737, .789, .842
    shared = (reports / "improvement_idc-2ep.md").read_text()
    assert "+1.0 ± 2.5" in shared and "+1.0 ± 2.5 *" not in shared  # dm(idc) - random(idc): not significant
    tex = (reports / "improvement_own.tex").read_text()
    assert r"$^{*}$" in tex and "−" not in tex


def test_figures_are_written_with_truetype_fonts(reports):
    for stem in ("saturation", "saturation_idc-2ep", "dasm_difference_own", "dasm_difference_idc-2ep",
                 "accuracy_vs_seconds_own"):
        for suffix in (".png", ".pdf"):
            assert (reports / f"{stem}{suffix}").stat().st_size > 5000, stem
        pdf = (reports / f"{stem}.pdf").read_bytes()
        assert b"/Type3" not in pdf and b"/FontType 3" not in pdf and b"/FontFile2" in pdf, stem


def test_the_font_check_detects_type3(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"pdf.fonttype": 3}):
        fig, ax = plt.subplots()
        ax.set_title("type 3")
        fig.savefig(tmp_path / "t3.pdf")
        plt.close(fig)
    assert b"/Type3" in (tmp_path / "t3.pdf").read_bytes()


def test_every_registered_method_has_a_distinct_look():
    from bench.methods.registry import list_methods

    looks = [(s["color"], s["marker"], s["linestyle"]) for s in map(method_style, list_methods())]
    assert len(set(looks)) == len(looks)
    assert method_style("dasm")["linestyle"] != method_style("dm")["linestyle"] != method_style("herding")["linestyle"]


def test_cells_of_a_single_seed_have_no_interval():
    df = pd.DataFrame(_rows())
    one = df[(df["seed"] == 0) & (df["protocol"] == "idc@2ep")]
    header, body, _ = saturation_cells(one, read_full_data("/nonexistent"))
    cells = dict(body)
    assert header == ["method", "IPC 1", "IPC 10"]
    assert cells["dasm"][1].text == "97.0" and cells["dasm"][1].bold and not cells["seq"][1].mark


def test_plot_warns_when_a_table_mixes_code_versions(tmp_path):
    import pandas as pd

    from bench.report.plots import mixed_versions_warning

    one = pd.DataFrame({"code_version": ["0.1.0+gaaa", "0.1.0+gaaa"]})
    assert mixed_versions_warning(one, tmp_path) == ""
    two = pd.DataFrame({"code_version": ["0.1.0+gaaa", "0.1.0+gbbb", "0.1.0+gbbb"]})
    assert mixed_versions_warning(two, tmp_path) == (f"warning: {tmp_path} mixes 2 code versions: "
                                                     "0.1.0+gaaa (1 rows), 0.1.0+gbbb (2 rows)")
