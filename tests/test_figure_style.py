"""Figures read at a paper's column width (issue 29): one palette with a (colour, marker) of its own
per method, accuracy kept inside [0, 100], log and symlog scales named in the axis labels, heatmaps
that state n and the interval and share one colour scale, set pictures that say how many images
they show, enough labelled ticks on a log time axis, every figure 3.5 in (or 7.16 in) wide with no
text under 7 pt, and every ± of a Markdown table explained in its caption."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection, PolyCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from bench.report.style import (  # noqa: E402
    DOUBLE_WIDTH,
    METHOD_COLOURS,
    MIN_FONT_PT,
    OKABE_ITO,
    SINGLE_WIDTH,
    method_style,
)

# per (method, protocol): accuracies of seeds 0, 1, 2 at IPC 10 (IPC 1: minus 10, IPC 50: plus 1, capped)
VALUES = {
    ("random", "dc@2ep"): [85.0, 86.0, 87.0],
    ("dm", "dc@2ep"): [88.0, 89.0, 90.0],
    ("idc", "idc@2ep"): [95.0, 95.5, 96.0],
    ("random", "idc@2ep"): [90.0, 90.0, 90.0],
    ("seq", "idc@2ep"): [99.9, 90.0, 99.9],    # mean 96.6, 95% t half-width 14.2: the interval reaches 110.8
    ("dasm", "idc@2ep"): [97.0, 97.5, 98.0],
}
SECONDS = {"random": 0.001, "dm": 3.0, "idc": 40.0, "seq": 120.0, "dasm": 150.0}  # per IPC 1; x IPC


def _rows(archs: tuple[str, ...] = ("convnet",), ipcs: tuple[int, ...] = (1, 10, 50)) -> list[dict]:
    rows = []
    for (method, protocol), accs in VALUES.items():
        for arch in archs:
            for ipc in ipcs:
                for seed, acc in enumerate(accs):
                    value = min(100.0, acc + {1: -10.0, 10: 0.0, 50: 1.0}.get(ipc, 0.0)) - (arch != "convnet") * 5
                    rows.append({"cell_key": f"{method}-{protocol}-{arch}-{ipc}-{seed}", "method": method,
                                 "dataset": "digits", "ipc": ipc, "seed": seed, "arch": arch, "protocol": protocol,
                                 "num_models": 1, "acc_last": value, "acc_last_std": 0.0, "acc_val": value,
                                 "acc_val_std": 0.0, "distill_seconds": SECONDS[method] * ipc, "eval_seconds": 1.0,
                                 "code_version": "t", "config_hash": f"{method}{seed}{ipc}", "synthetic_path": ""})
    return rows


@dataclass
class Drawn:
    name: str
    fig: object
    box: object      # the tight bounding box of everything drawn, in inches
    paths: list


def _capturing(monkeypatch, figures: list[Drawn]) -> None:
    """Every figure handed to the one writer is drawn, kept for inspection, then written as usual."""
    import bench.report.figures
    import bench.report.pictures
    import bench.report.plots
    import dasm.diagnostics

    original = bench.report.pictures.save_figure

    def capture(fig, path, formats=("png", "pdf")):
        fig.canvas.draw()
        record = Drawn(Path(path).stem, fig, fig.get_tightbbox(fig.canvas.get_renderer()), [])
        figures.append(record)
        record.paths = original(fig, path, formats)
        return record.paths

    for module in (bench.report.pictures, bench.report.figures, bench.report.plots, dasm.diagnostics):
        monkeypatch.setattr(module, "save_figure", capture)


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _every_figure_kind(tmp_path: Path) -> None:
    """Each figure kind, drawn from small synthetic tables and sets."""
    from bench.methods.registry import get_method
    from bench.report.budget import budget_figure
    from bench.report.cross_arch import write_cross_arch_tables
    from bench.report.curves import Curves, curves_figure
    from bench.report.figures import paired_difference_panels, paired_figure, saturation_panels, seconds_figure
    from bench.report.pictures import synthetic_picture
    from bench.report.plots import saturation_figure
    from bench.report.tables import own_rows
    from bench.store.full_data import read_full_data
    from bench.store.synthetic import SyntheticSet
    from dasm.diagnostics import diagnostics_figure

    df = pd.DataFrame(_rows())
    own = own_rows(df)
    shared = df[df["protocol"] == "idc@2ep"]
    (tmp_path / "full_data.json").write_text(json.dumps({"by_protocol": {
        "idc@2ep": {"dataset": "digits", "protocol": "idc@2ep", "acc": 99.5}}}))
    saturation_figure(df, tmp_path / "quick", full_data=99.5)
    saturation_panels(own, df, read_full_data(tmp_path), tmp_path / "saturation", title="digits\nn = 3 seeds")
    paired_figure(shared, "dasm", get_method("dasm").paired_against, tmp_path / "dasm_difference", title="digits")
    paired_difference_panels(shared, ["idc", "seq"], tmp_path / "paired_two")
    paired_difference_panels(shared, ["idc"], tmp_path / "paired_one")
    seconds_figure(own, tmp_path / "seconds_three", title="digits")
    seconds_figure(own[own["ipc"] == 10], tmp_path / "seconds_one")
    write_cross_arch_tables(pd.DataFrame(_rows(("convnet", "resnet18"), (1, 10))), tmp_path)
    labels = torch.arange(10).repeat_interleave(50)
    syn = SyntheticSet(torch.rand(500, 1, 8, 8), labels, metadata={"method": "dm"})
    synthetic_picture(syn, tmp_path / "picture", (0.5,), (0.5,), [f"class {c}" for c in range(10)], title="IPC 50")
    curves_figure(Curves([("segment 1 (idc)", [30.0, 2.0, 1.0]), ("segment 2 (idc)", [1.5, 0.9])],
                         [(1, 96.0), (2, 99.8)]), tmp_path / "curves", "dasm digits IPC 10")
    budget = pd.DataFrame({"dataset": "digits", "ipc": [10] * 4, "method": ["dm", "dm", "idc", "idc"],
                           "rung": [1, 2, 1, 2], "budget": ["a", "b", "a", "b"], "seeds": 3,
                           "distill_s": [3.0, 6.0, 20.0, 45.0], "acc_mean": [90.0, 91.0, 97.0, 99.5],
                           "acc_ci95": [1.0, 1.0, 0.5, 2.0], "protocol": "idc@2ep",
                           "chosen": [False, True, True, False], "flag": ""})
    budget_figure(budget, tmp_path / "budget.png")
    segments = [{"segment": k, "size": 5, "window": [0.2 * k - 0.2, 0.2 * k + 0.4], "pool_size": 400,
                 "pool_min_per_class": 40, "pool_mean_loss": 0.5 * k, "all_mean_loss": 0.6, "val_accuracy": 97.0 + k}
                for k in (1, 2, 3)]
    dasm_set = SyntheticSet(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), metadata={
        "method": "dasm", "dataset": "digits", "ipc": 15, "seed": 0,
        "dasm": {"base": "idc", "schedule": "linear", "segments": segments}})
    diagnostics_figure(dasm_set, tmp_path / "diagnostics")


@pytest.fixture(scope="module")
def every_figure(tmp_path_factory) -> dict[str, Drawn]:
    figures: list[Drawn] = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        _capturing(monkeypatch, figures)
        _every_figure_kind(tmp_path_factory.mktemp("figures"))
    return {d.name: d for d in figures}


KINDS = {"quick", "saturation", "dasm_difference", "paired_two", "paired_one", "seconds_three", "seconds_one",
         "cross_arch_digits_ipc1_heatmap", "cross_arch_digits_ipc10_heatmap", "picture", "curves", "budget",
         "diagnostics"}


def test_every_registered_method_has_its_own_colour_and_marker_from_the_palette():
    from bench.methods.registry import list_methods

    specs = list_methods()
    pairs = [(s.colour.upper(), s.marker) for s in specs.values()]
    assert len(set(pairs)) == len(pairs) == len(specs)
    assert {c for c, _ in pairs} <= {c.upper() for c in METHOD_COLOURS} <= {c.upper() for c in OKABE_ITO.values()}
    assert len({m for _, m in pairs}) == len(pairs)  # and a marker of its own: distinct in grey-scale print
    for group in {s.group for s in specs.values()}:  # one line style per group: no colour twice in a group
        colours = [s.colour for s in specs.values() if s.group == group]
        assert len(set(colours)) == len(colours), group
    for a, b in (("forgetting", "dasm-reverse"), ("herding", "idc"), ("dc", "seq"), ("dm", "dasm-reverse")):
        assert method_style(a)["color"] != method_style(b)["color"], (a, b)  # the collisions issue 29 found


def test_every_figure_kind_is_column_or_page_wide_with_text_of_7pt_or_more(every_figure):
    assert set(every_figure) == KINDS
    assert (SINGLE_WIDTH, DOUBLE_WIDTH) == (3.5, 7.16) and MIN_FONT_PT == 7
    for name, d in every_figure.items():
        width, height = d.fig.get_size_inches()
        assert width in (SINGLE_WIDTH, DOUBLE_WIDTH), (name, width)
        assert not [t.get_text() for t in _texts(d.fig) if t.get_fontsize() < MIN_FONT_PT], name
        # saved at the width it was drawn (no tight bounding box): included at \columnwidth, unscaled
        png = next(p for p in d.paths if p.suffix == ".png").read_bytes()
        assert struct.unpack(">II", png[16:24]) == (round(width * 200), round(height * 200)), name
        # and nothing is cut off at that width
        box = d.box
        assert box.x0 >= -0.02 and box.y0 >= -0.02 and box.x1 <= width + 0.02 and box.y1 <= height + 0.02, (name, box)


def _accuracy_axes(fig):
    return [ax for ax in fig.axes if "accuracy" in ax.get_ylabel()]


def test_accuracy_axes_and_intervals_stay_within_0_and_100(every_figure):
    checked = 0
    for name in ("quick", "saturation", "seconds_three", "seconds_one", "budget", "curves", "diagnostics"):
        fig = every_figure[name].fig
        for ax in fig.axes if name.startswith("seconds") else _accuracy_axes(fig):  # shared y: one label
            low, high = ax.get_ylim()
            assert 0.0 <= low < high <= 100.0, (name, low, high)
            for artist in ax.get_children():
                if isinstance(artist, Line2D) and len(artist.get_ydata()):
                    ys = [float(y) for y in artist.get_ydata()]
                elif isinstance(artist, (LineCollection, PolyCollection)):
                    ys = [float(y) for path in artist.get_paths() for y in path.vertices[:, 1]]
                else:
                    continue
                if artist.get_transform() == ax.transData or isinstance(artist, (LineCollection, PolyCollection)):
                    assert all(-1e-9 <= y <= 100.0 + 1e-9 for y in ys), (name, artist)
            checked += 1
    assert checked == 9
    # seq's IPC-10 interval (96.6 ± 14.2) is drawn to 100, not to 110.8
    ax = every_figure["seconds_one"].fig.axes[0]
    tops = [path.vertices[:, 1].max() for c in ax.collections if isinstance(c, LineCollection)
            for path in c.get_paths()]
    assert max(tops) == pytest.approx(100.0)


def test_log_and_symlog_axes_say_so_in_their_labels(every_figure):
    scales = []
    for name, d in every_figure.items():
        for ax in d.fig.axes:
            for scale, label in ((ax.get_xscale(), ax.get_xlabel()), (ax.get_yscale(), ax.get_ylabel())):
                if scale == "symlog":
                    # a panel of a shared y axis may leave the label to its first panel, which says it
                    siblings = ax.get_shared_y_axes().get_siblings(ax) if not label else [ax]
                    assert any("symlog" in a.get_ylabel() for a in siblings), (name, label)
                elif scale == "log" and label:  # a shared axis labels one panel
                    assert re.search(r"\blog\b", label), (name, label)
                scales.append(scale)
    assert "symlog" in scales and "log" in scales
    right = every_figure["saturation"].fig.axes[2]
    assert right.get_yscale() == "symlog" and right.get_ylabel() == "over random (points, symlog)"


def test_heatmaps_state_n_and_the_interval_and_share_one_colour_scale(every_figure):
    maps = [every_figure[f"cross_arch_digits_ipc{i}_heatmap"].fig for i in (1, 10)]
    limits = {fig.axes[0].images[0].get_clim() for fig in maps}
    assert len(limits) == 1  # one colour scale: IPC 1 (lower accuracies) and IPC 10 share it
    low, high = limits.pop()
    # the report's range (random at IPC 1 on ResNet-18 to dasm at IPC 10 on ConvNet), not one map's
    assert (low, high) == (pytest.approx(71.0), pytest.approx(97.5))
    for fig in maps:
        title = fig.axes[0].get_title()
        assert "mean ± 95% CI" in title and "n = 3 seeds per cell" in title
        cells = [t.get_text() for t in fig.axes[0].texts]
        assert cells and all("±" in c for c in cells)


def test_set_pictures_say_how_many_images_they_show(every_figure):
    from bench.report.pictures import shown_caption

    title = every_figure["picture"].fig.axes[0].get_title()
    assert title == "IPC 50\n100 of 500 images shown (10 of 50 per class)"
    assert shown_caption([2, 2], 10) == "all 4 images (2 per class)"
    assert shown_caption([40, 40], 10, decoded=True) == "20 of 80 decoded images shown (10 of 40 per class)"


def _labelled_ticks(ax) -> list[float]:
    low, high = sorted(ax.get_xlim())
    return [t.get_loc() for t in ax.xaxis.get_major_ticks()
            if t.label1.get_visible() and t.label1.get_text().strip() and low <= t.get_loc() <= high]


def test_time_axes_have_three_labelled_ticks_over_a_decade(every_figure):
    for name in ("seconds_three", "seconds_one", "budget"):
        for ax in every_figure[name].fig.axes:
            if ax.get_xscale() != "log":
                continue
            low, high = sorted(ax.get_xlim())
            assert high / low > 10, name  # the data span more than a decade
            assert len(_labelled_ticks(ax)) >= 3, (name, _labelled_ticks(ax))


def test_log_ticks_give_three_labels_on_any_view_over_a_decade():
    import matplotlib.pyplot as plt

    from bench.report.style import log_ticks

    for low, high in ((3.0, 40.0), (1.5, 16.0), (11.0, 111.0), (0.2, 5000.0), (7.0, 30.0)):
        fig, ax = plt.subplots()
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ticks = log_ticks(ax, "x")
        fig.canvas.draw()
        assert len(_labelled_ticks(ax)) >= 3 and all(low <= t <= high for t in ticks), (low, high, ticks)
        plt.close(fig)


WHAT = re.compile(r"standard deviation|\bstd\b|95%")
HOW_MANY = re.compile(r"n = \d|over \d+(-\d+)? (seeds|models|runs)|over n (seeds|models|runs)|\(n=")


def _unexplained_tables(text: str) -> list[str]:
    """Tables that show ± without a caption (the paragraph before or after) saying what it is and over
    how many runs."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]
    bad = []
    for k, block in enumerate(blocks):
        if not block.startswith("|") or "±" not in block:
            continue
        captions = [b for b in blocks[max(0, k - 1):k + 2] if not b.startswith("|")]
        if not any(WHAT.search(c) and HOW_MANY.search(c) for c in captions):
            bad.append(block.splitlines()[0])
    return bad


def test_every_markdown_table_with_pm_says_what_it_is_and_over_how_many_runs(tmp_path):
    from bench.report.budget import budget_markdown
    from bench.report.plots import write_reports
    from bench.store.results import ResultsTable

    ResultsTable(tmp_path).append(_rows(("convnet", "resnet18"), (1, 10)))
    write_reports(tmp_path, log=lambda m: None, pictures=False)
    tables = {p.name: p.read_text() for p in tmp_path.glob("*.md")}
    assert {"table_acc_last.md", "saturation_own.md", "improvement_own.md", "cross_arch_digits_ipc10.md"} <= set(tables)
    budget = pd.DataFrame({"dataset": "digits", "ipc": [10, 10], "method": ["dm", "dm"], "rung": [1, 2],
                           "budget": ["a", "b"], "seeds": 3, "distill_s": [3.0, 6.0], "acc_mean": [90.0, 91.0],
                           "acc_ci95": [1.0, 1.0], "val_mean": [89.0, 90.5], "val_ci95": [1.0, 1.0],
                           "protocol": "dc@2ep", "chosen": [True, False], "flag": "", "train_split": "train-val"})
    tables["budget"] = budget_markdown(budget)
    for name, text in tables.items():
        assert not _unexplained_tables(text), name
    assert "mean ± sample standard deviation over 3 seeds" in tables["table_acc_last.md"]
    assert _unexplained_tables("| a |\n|---|\n| 1 ± 2 |\n")  # the check finds an uncaptioned ±
