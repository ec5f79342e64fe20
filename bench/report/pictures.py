"""Writing figures: :func:`save_figure`, the one figure writer (every table figure, set picture and
method diagnostic goes through it), and :func:`synthetic_picture`, the one renderer of a synthetic
set as an image grid (``dasm-bench distill --picture``, ``show`` and ``plot``). No pandas, no
method: modules at any level (``bench.report.figures``, ``bench.report.plots``, a method's diagnostics) import it.

Example::

    syn = SyntheticSet.load("herding.safetensors")
    synthetic_picture(syn, "herding", data.mean, data.std, data.class_names)    # herding.png + .pdf
    synthetic_picture(syn, "herding.png", data.mean, data.std, formats=("png",))
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Sequence

from bench.errors import BenchError
from bench.files import write_atomically


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend: the one place the harness picks a backend,
    so a figure is written the same way on a laptop, a headless node and in a worker process."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

def save_figure(fig, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``fig`` once per format next to ``path`` (suffix replaced), close it, return the paths.
    Fonts are embedded as TrueType (Type 42), never Type 3, whatever style drew the figure."""
    import matplotlib
    import matplotlib.pyplot as plt

    supported = fig.canvas.get_supported_filetypes()
    unknown = [fmt for fmt in formats if fmt not in supported]
    if unknown:  # e.g. `dasm-bench show --out set.xyz`: one line, before anything is written
        plt.close(fig)
        raise BenchError(f"cannot write a .{unknown[0]} figure; use one of .{', .'.join(sorted(supported))}")
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_suffix(f".{fmt}")
        # no creation date: regenerating a figure from the same results leaves the file unchanged
        metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None} if fmt == "png" else None
        buffer = io.BytesIO()
        with matplotlib.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
            fig.savefig(buffer, format=fmt, dpi=200 if fmt == "png" else 150, metadata=metadata)
        # the one writer: a planted link at ``target`` is replaced, never written through
        write_atomically(target, buffer.getvalue())
        written.append(target)
    plt.close(fig)
    return written


def shown_caption(counts: Sequence[int], cols: int, decoded: bool = False) -> str:
    """What a set picture shows: ``100 of 500 images shown (10 of 50 per class)``, or ``all 20
    images (2 per class)``; a reader must not take ten images per class for the whole set."""
    total, shown = sum(counts), sum(min(cols, n) for n in counts)
    per = max(counts) if counts else 0
    what = "decoded images" if decoded else "images"
    if shown == total:
        return f"all {total} {what} ({per} per class)"
    return f"{shown} of {total} {what} shown ({min(cols, per)} of {per} per class)"


def synthetic_picture(syn, path: str | os.PathLike, mean: Sequence[float], std: Sequence[float],
                      class_names: Sequence[str] | None = None, max_per_class: int = 10, title: str | None = None,
                      formats: Sequence[str] = ("png", "pdf"), decoded: bool = False) -> list[Path]:
    """A synthetic set as one image grid (a row per class, up to ``max_per_class`` columns), drawn
    as a single picture so that sets of hundreds of images render in well under a second, one
    column (3.5 in) wide, titled with ``title`` and how many of the set's images it shows.
    ``decoded``: the images a model trains on (IDC's multi-formation decoded) instead of the stored ones."""
    plt = pyplot()
    import torch
    from torchvision.utils import make_grid

    from bench.report.style import MIN_FONT_PT, SINGLE_WIDTH, paper_style

    images, labels = syn.decode() if decoded else (syn.images, syn.labels)
    labels = labels if labels.ndim == 1 else labels.argmax(1)
    classes = sorted(set(labels.tolist()))
    counts = [int((labels == c).sum()) for c in classes]
    cols = max(1, min(max_per_class, max(counts)))
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    pixels = (images.detach().cpu().float() * s + m).clamp(0, 1)
    tiles = []
    for c in classes:  # pad short rows with blanks so every class is one row
        idx = torch.nonzero(labels == c).flatten()[:cols]
        row = pixels[idx]
        if len(row) < cols:
            row = torch.cat([row, torch.ones(cols - len(row), *pixels.shape[1:])])
        tiles.append(row)
    grid = make_grid(torch.cat(tiles), nrow=cols, padding=1, pad_value=1.0)
    size = pixels.shape[-1] + 1
    caption = shown_caption(counts, cols, decoded)
    # one column wide at print size; square tiles (at most 0.3 in: a few columns are not blown up)
    # set the height, at most a page
    tile = min(0.3, (SINGLE_WIDTH - 0.9) / cols)
    height = min(9.0, tile * len(classes) + (0.6 if title else 0.45))
    pitch = min(tile, (height - 0.6) / len(classes))  # inches per class row once the height is capped
    label_every = max(1, math.ceil(MIN_FONT_PT * 1.2 / 72 / pitch))
    with paper_style():
        fig, ax = plt.subplots(figsize=(SINGLE_WIDTH, height))
        image = grid.permute(1, 2, 0).numpy()
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_xticks([])
        rows = range(0, len(classes), label_every)  # many classes: every k-th label, legible, not overlapping
        ax.set_yticks([size * (r + 0.5) for r in rows])
        ax.set_yticklabels([class_names[classes[r]] if class_names else str(classes[r]) for r in rows])
        ax.grid(False)
        ax.tick_params(left=False)  # the labels name rows; tick marks would only crowd them
        for side in ax.spines.values():
            side.set_visible(False)
        ax.set_title(f"{title}\n{caption}" if title else caption)
        fig.tight_layout()
    return save_figure(fig, path, formats)
