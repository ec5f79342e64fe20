"""Curves a distillation run stored in its set's metadata, as a figure (`dasm-bench show --curves`).

What is read (nothing is recomputed):

- ``metadata["matching_loss"]``: the per-iteration matching loss of DC, DSA and IDC;
- ``metadata["dasm"]["segments"][k]``: for each DASM segment its base matcher's
  ``base_metadata["matching_loss"]`` (drawn one after the other, a colour per segment) and the
  ``val_accuracy`` of a model trained on segments 1..k.

Example::

    curves = stored_curves(SyntheticSet.load("dasm.safetensors").metadata)
    show_curves("dasm.safetensors")          # dasm.curves.png and .pdf next to the set
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError


@dataclass
class Curves:
    loss_segments: list[tuple[str, list[float]]] = field(default_factory=list)  # (label, per-iteration loss)
    validation: list[tuple[int, float]] = field(default_factory=list)            # (segment, val accuracy %)

    def __bool__(self) -> bool:
        return bool(self.loss_segments or self.validation)


def _numbers(values: Any) -> list[float]:
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]


def stored_curves(metadata: dict[str, Any]) -> Curves:
    """The loss and validation curves held in a set's metadata (empty when it stores none)."""
    curves = Curves()
    top = _numbers(metadata.get("matching_loss"))
    if top:
        curves.loss_segments.append((str(metadata.get("method", "loss")), top))
    dasm = metadata.get("dasm")
    if isinstance(dasm, dict):
        for record in dasm.get("segments") or []:
            if not isinstance(record, dict):
                continue
            k = int(record.get("segment", len(curves.validation) + 1))
            base = record.get("base_metadata") if isinstance(record.get("base_metadata"), dict) else {}
            loss = _numbers(base.get("matching_loss"))
            if loss:
                curves.loss_segments.append((f"segment {k} ({dasm.get('base', 'base')})", loss))
            if isinstance(record.get("val_accuracy"), (int, float)):
                curves.validation.append((k, float(record["val_accuracy"])))
    return curves


def curves_figure(curves: Curves, path: str | os.PathLike, title: str = "") -> list[Path]:
    """Matching loss against iteration (segments end to end) and validation accuracy per segment,
    in the paper style (:mod:`bench.report.style`: its palette, print-size text, column widths)."""
    from bench.report.pictures import pyplot

    plt = pyplot()

    from bench.report.pictures import save_figure
    from bench.report.style import METHOD_COLOURS, OKABE_ITO, accuracy_axis, paper_style, size

    panels = int(bool(curves.loss_segments)) + int(bool(curves.validation))
    with paper_style():
        fig, axes = plt.subplots(1, panels, figsize=size("double" if panels > 1 else "single", 2.6), squeeze=False)
        axes = list(axes[0])
        if curves.loss_segments:
            ax = axes.pop(0)
            start = 0
            for i, (label, values) in enumerate(curves.loss_segments):
                xs = range(start + 1, start + len(values) + 1)
                ax.plot(xs, values, color=METHOD_COLOURS[i % len(METHOD_COLOURS)], label=label, linewidth=1.2)
                if i:
                    ax.axvline(start + 0.5, color="0.7", linewidth=0.8, linestyle=":")
                start += len(values)
            ax.set_xlabel("iteration" + (" (segments end to end)" if len(curves.loss_segments) > 1 else ""))
            ax.set_ylabel("matching loss")
            low = min(min(v) for _, v in curves.loss_segments)
            if low > 0 and max(max(v) for _, v in curves.loss_segments) > 20 * low:  # log only for a wide range
                ax.set_yscale("log")
                ax.set_ylabel("matching loss (log)")  # a log axis says so
            ax.legend()
        if curves.validation:
            ax = axes.pop(0)
            ks = [k for k, _ in curves.validation]
            ax.plot(ks, [a for _, a in curves.validation], "o-", color=OKABE_ITO["blue"])
            ax.set_xticks(ks)
            ax.set_xlabel("segments trained on (1..k)")
            ax.set_ylabel("validation accuracy (%)")
            accuracy_axis(ax)
        if title:
            fig.suptitle(title)
        fig.tight_layout()
    return save_figure(fig, path)


def show_curves(set_path: str | os.PathLike, out: str | os.PathLike | None = None) -> list[Path]:
    """The `dasm-bench show --curves` command: writes ``<set>.curves.png/.pdf`` (or ``out``)."""
    from bench.store.synthetic import SyntheticSet

    syn = SyntheticSet.load(set_path)
    meta = syn.metadata
    curves = stored_curves(meta)
    if not curves:
        raise BenchError(f"{set_path} stores no curves (method {meta.get('method', '?')!r}; DC, DSA, IDC and "
                         "DASM record their matching loss, DASM its validation accuracy per segment)")
    target = Path(out) if out else Path(set_path).with_suffix(".curves.png")
    title = f"{meta.get('method', '')} {meta.get('dataset', '')} IPC {meta.get('ipc', '')}".strip()
    paths = curves_figure(curves, target, title)
    print("curves: " + ", ".join(str(p) for p in paths))
    return paths
