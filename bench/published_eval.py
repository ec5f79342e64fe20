"""Import every published set in a folder and evaluate each under its source's protocol: a table
of measured against reported accuracy (``dasm-bench published``).

Each sub-folder of the root is one published set (``../shared/data/published/``: DC/DSA/DM
result files, MTT save directories, DD-Ranking folders), imported with
:func:`bench.importers.import_set` (format and ZCA detected, as ``dasm-bench import`` does) and
evaluated with :data:`SOURCE_PROTOCOL`:

- DC/DSA/DM result files: ``dc`` (1000 epochs + 1, DSA, lr 0.01);
- MTT/DATM save directories and DD-Ranking folders: ``mtt``, the same schedule at the set's
  learned lr when one was saved (``lr_<it>.pt`` / ``lr.pt``), else at the protocol's 0.01;
  soft labels train with soft cross-entropy; ZCA sets train and test in whitened space.

The root's ``README.md`` table (``| `folder/` | source | format | reported |``) gives the reported
column; a DC result file's own ``accs_all_exps`` gives another (mean and population std, as the
reference ``main.py`` prints them with ``np.mean``/``np.std``). After every set the table is
rewritten (``published.csv`` and ``published.md``, atomically), so an interrupted run keeps what
it measured.

Example::

    rows = evaluate_published(Path("../shared/data/published"), load_dataset("cifar10"), Path("out/published"))
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.data import Dataset
from bench.errors import BenchError
from bench.files import write_atomically

SOURCE_PROTOCOL = {"dc": "dc", "mtt": "mtt", "ddranking": "mtt"}


@dataclass
class PublishedRow:
    """One published set: how it was read and evaluated, what it scored, what its source reported."""

    folder: str
    format: str
    images: int
    ipc: int | None
    labels: str
    zca: bool
    protocol: str
    lr: float
    arch: str
    models: int
    measured_mean: float
    measured_std: float
    reported: str
    file_reported: str


def reported_accuracies(readme: Path) -> dict[str, str]:
    """``folder -> reported`` from the README's markdown table (its last column), as written."""
    if not readme.is_file():
        return {}
    found = {}
    for line in readme.read_text(encoding="utf-8", errors="replace").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue  # the header, its separator and prose
        found[cells[0].strip("`").rstrip("/")] = cells[-1]
    return found


def _file_reported(provenance: dict) -> str:
    accs = provenance.get("reported_accuracies") or {}
    parts = []
    for arch, values in sorted(accs.items()):
        if values:
            pct = [100 * float(v) for v in values]
            parts.append(f"{arch} {statistics.fmean(pct):.2f} ± {statistics.pstdev(pct):.2f} (n={len(pct)})")
    return "; ".join(parts)


def evaluate_published(root: Path, data: Dataset, out: Path, arch: str = "convnet", epochs: int | None = None,
                       models: int = 5, seed: int = 0, device: torch.device | str = "cpu",
                       progress: bool = False) -> list[PublishedRow]:
    """Import and evaluate every set under ``root`` (sub-folders, sorted); sets go to ``out/sets``,
    the table to ``out/published.csv`` and ``out/published.md``. ``epochs`` shortens every
    protocol (tests, CPU runs); the protocol column then names the budget (``dc@2ep``).

    Example::

        evaluate_published(Path("published"), data, Path("out"), epochs=2, models=1)
    """
    from bench.evaluation import evaluate_synthetic, get_protocol
    from bench.importers import import_set

    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise BenchError(f"published sets folder {root} does not exist")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise BenchError(f"{root} holds no published set (one sub-folder per set)")
    reported = reported_accuracies(root / "README.md")
    rows: list[PublishedRow] = []
    for folder in folders:
        try:
            syn = import_set(folder, data, method=f"published-{folder.name}")
        except BenchError as exc:
            raise BenchError(f"{folder.name}: {exc}") from None
        syn.save(out / "sets" / f"{folder.name}.safetensors")
        info = syn.metadata["import"]
        protocol = get_protocol(SOURCE_PROTOCOL[info["format"]], epochs)
        res = evaluate_synthetic(syn, data, arch, protocol, models, seed, device, progress=progress)
        lr = float(syn.metadata["syn_lr"]) if protocol.lr_from_set and "syn_lr" in syn.metadata else protocol.lr
        rows.append(PublishedRow(folder.name, info["format"], len(syn), syn.metadata.get("ipc"), info["labels"],
                                 "zca" in syn.metadata, protocol.name, lr, arch, models, res.last_mean,
                                 res.last_std, reported.get(folder.name, ""), _file_reported(info)))
        write_table(rows, out, data.name)
    return rows


def write_table(rows: list[PublishedRow], out: Path, dataset: str) -> None:
    """``published.csv`` (every field) and ``published.md`` (measured next to reported)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    write_atomically(out / "published.csv", buf.getvalue())
    lines = [f"# Published sets re-evaluated on {dataset}", "",
             "| set | format | IPC | labels | ZCA | protocol (lr) | measured (last epoch) | reported | file's own |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.folder} | {r.format} | {r.ipc} | {r.labels} | {'yes' if r.zca else 'no'} | "
                     f"{r.protocol} ({r.lr:g}) | {r.measured_mean:.2f} ± {r.measured_std:.2f} "
                     f"({r.models} × {r.arch}) | {r.reported or '-'} | {r.file_reported or '-'} |")
    write_atomically(out / "published.md", "\n".join(lines) + "\n")
