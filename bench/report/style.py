r"""One style for every figure and table: method order, colours, markers, line styles, sizes, fonts.

What a method looks like is registered with the method (``register_method(..., group=, order=,
colour=, marker=)``); this module turns it into matplotlib keywords. Colours are Okabe & Ito's
colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008), the one palette of every
figure; yellow is left out of the method colours (it fades on white paper). Seven colours cannot
tell 14 methods apart, so no colour repeats within a group, each group has its own line style
(coresets dotted, matchers dashed, DASM variants solid and thicker) and each method its own
marker: every method's (colour, marker) pair is its own, in grey-scale print and for every colour
vision. Figures are drawn at the width they are printed (:data:`SINGLE_WIDTH`, one column, or
:data:`DOUBLE_WIDTH`, the whole page) with no text under :data:`MIN_FONT_PT`, and saved without a
tight bounding box, so a figure included at ``\columnwidth`` is never scaled. Fonts are embedded
as TrueType (Type 42), never Type 3, which some venues reject.

Example::

    with paper_style():
        fig, ax = plt.subplots(figsize=size("single"))
        ax.plot(x, y, **method_style("dasm"))
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator, Sequence

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}

# the colours methods may be registered with (all but yellow); greys mark references (random, full data)
METHOD_COLOURS = tuple(v for k, v in OKABE_ITO.items() if k != "yellow")

# widths of a two-column paper (IEEE/ACM two-column templates: 3.5 in column, 7.16 in text width):
# a figure drawn at its printed width is included unscaled, so its font sizes are the printed ones
SINGLE_WIDTH = 3.5
DOUBLE_WIDTH = 7.16
MIN_FONT_PT = 7.0   # the smallest text of any figure at print size

GROUP_LINES = {"coresets": {"linestyle": ":", "linewidth": 1.1},
               "matchers": {"linestyle": "--", "linewidth": 1.1},
               "dasm": {"linestyle": "-", "linewidth": 1.6}}
GROUP_NAMES = {"coresets": "coresets", "matchers": "matching baselines", "dasm": "DASM and ablations"}

# the architecture the sets are distilled with: the first column of cross-architecture tables
BASE_ARCH = "convnet"

# how architectures are named in papers; others are shown as given
PRETTY_ARCH = {
    "convnet": "ConvNet", "convnet_bn": "ConvNet-BN", "resnet18": "ResNet-18", "resnet50": "ResNet-50",
    "vgg11_dc": "VGG-11", "vgg11_dc_bn": "VGG-11-BN", "vgg11": "VGG-11 (timm)", "vgg11_bn": "VGG-11-BN (timm)",
    "convnext_atto": "ConvNeXt-atto",
    "mobilenetv3_small_050": "MobileNetV3-S-0.5", "mobilenetv3_small_100": "MobileNetV3-S",
    "regnetx_002": "RegNetX-200MF", "efficientnet_b0": "EfficientNet-B0", "vit_tiny_patch16_224": "ViT-Tiny",
}


def pretty_arch(name: str) -> str:
    """An architecture's name as papers write it (``resnet18`` -> ``ResNet-18``)."""
    return PRETTY_ARCH.get(name, name)


# sizes legible at print size: 7-8 pt text, as the templates' captions (~9 pt) expect; no tight
# bounding box on saving (it would change the width the figure was laid out for)
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
      "figure.titlesize": 8, "xtick.labelsize": MIN_FONT_PT, "ytick.labelsize": MIN_FONT_PT,
      "legend.fontsize": MIN_FONT_PT, "legend.title_fontsize": 8, "legend.frameon": False,
      "lines.markersize": 4, "axes.spines.top": False, "axes.spines.right": False,
      "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "savefig.bbox": "standard"}


def size(kind: str = "single", height: float | None = None) -> tuple[float, float]:
    """Figure size in inches: ``single`` (3.5 in, one column) or ``double`` (7.16 in, the page) wide."""
    if kind not in ("single", "double"):
        raise ValueError(f"size kind must be single or double, got {kind!r}")
    width = SINGLE_WIDTH if kind == "single" else DOUBLE_WIDTH
    return width, height if height is not None else width * (0.75 if kind == "single" else 0.38)


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """matplotlib settings of every figure (TrueType fonts, print-size text)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def _spec(name: str) -> Any:
    from bench.methods.registry import list_methods

    return list_methods().get(name)


def method_group(name: str) -> str:
    spec = _spec(name)
    return spec.group if spec is not None else "other"


def method_sort_key(name: str) -> tuple[int, str]:
    """Registry order (coresets, matchers, DASM variants), unknown names last, by name."""
    spec = _spec(name)
    return (spec.order if spec is not None else 10_000, name)


def ordered_methods(names: Iterable[str]) -> list[str]:
    return sorted(dict.fromkeys(str(n) for n in names), key=method_sort_key)


def method_style(name: str) -> dict[str, Any]:
    """``plot`` keywords of one method: colour, marker, line style and width, label, z-order."""
    spec = _spec(name)
    group = spec.group if spec is not None else "other"
    lines = GROUP_LINES.get(group, {"linestyle": "-.", "linewidth": 1.0})
    colour = (spec.colour if spec is not None and spec.colour else "#777777")
    return {"color": colour, "marker": spec.marker if spec is not None else "o", **lines, "label": name,
            "zorder": 3 if group == "dasm" else 2}


# ----------------------------------------------------------------------------- axes

ACCURACY_LIMITS = (0.0, 100.0)


def clip_accuracy(values: Any) -> Any:
    """Accuracies (%) clipped to [0, 100]: a t interval of seeds near 100 % can reach past it, but
    no accuracy can, so a band or bar is drawn to 100 and not beyond."""
    import numpy as np

    return np.clip(np.asarray(values, dtype=float), *ACCURACY_LIMITS)


def accuracy_yerr(means: Sequence[float], half_widths: Sequence[float]) -> Any:
    """``errorbar`` ``yerr`` (2 x n, below / above) of ``mean ± half_width`` clipped to [0, 100];
    a NaN half-width (one seed) draws no bar."""
    import numpy as np

    m = np.asarray(means, dtype=float)
    h = np.nan_to_num(np.asarray(half_widths, dtype=float), nan=0.0)
    return np.vstack([m - clip_accuracy(m - h), clip_accuracy(m + h) - m])


def accuracy_axis(ax: Any) -> None:
    """Keep an accuracy axis inside [0, 100] (autoscaling adds a margin past 100 for data near it)."""
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, ACCURACY_LIMITS[0]), min(high, ACCURACY_LIMITS[1]))


def log_ticks(ax: Any, which: str = "x", minimum: int = 3) -> list[float]:
    """At least ``minimum`` labelled ticks on a log axis, as plain numbers: decades when the view
    holds that many, else 1-2-5 steps (three per decade, so any view over one decade has three),
    else 1-2-3-5-7. Call after the data are drawn (the ticks are fixed to the view)."""
    import math

    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    low, high = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    axis = ax.xaxis if which == "x" else ax.yaxis
    ticks: list[float] = []
    if low > 0:
        decades = range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
        for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0, 7.0)):
            ticks = [m * 10.0 ** e for e in decades for m in subs if low <= m * 10.0 ** e <= high]
            if len(ticks) >= minimum:
                break
    axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())  # minor labels collide with the major ones
    return ticks
