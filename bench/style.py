"""One style for every figure and table: method order, colours, markers, line styles, sizes, fonts.

What a method looks like is registered with the method (``register_method(..., group=, order=,
colour=, marker=)``); this module turns it into matplotlib keywords. Colours are Okabe & Ito's
colour-blind-safe palette (Okabe & Ito, "Color Universal Design", 2008); because 8 colours cannot
tell 13 methods apart, each group also has its own line style (coresets dotted, matchers dashed,
DASM variants solid and thicker) and each method its own marker, so curves stay distinct in
grey-scale print and for every colour vision. Fonts are embedded as TrueType (Type 42), never
Type 3, which some venues reject.

Example::

    with paper_style():
        fig, ax = plt.subplots(figsize=size("single"))
        ax.plot(x, y, **method_style("dasm"))
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}

# widths of a two-column paper (e.g. NeurIPS/ICML/CVPR templates): one column, the whole page
SINGLE_WIDTH = 3.25
DOUBLE_WIDTH = 6.75

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


# sizes legible at print size: 7-8 pt text, as the templates' captions (~9 pt) expect
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.frameon": False,
      "lines.markersize": 4, "axes.spines.top": False, "axes.spines.right": False,
      "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.5, "savefig.bbox": "tight",
      "savefig.pad_inches": 0.02}


def size(kind: str = "single", height: float | None = None) -> tuple[float, float]:
    """Figure size in inches: ``single`` (3.25 in) or ``double`` (6.75 in) column width."""
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
    from bench.registry import list_methods

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
