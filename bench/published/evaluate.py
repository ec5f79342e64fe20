"""Import every published set in a folder and evaluate each under its source's protocol: a table
of measured against reported accuracy (``dasm-bench published``).

Each sub-folder of the root is one published set (``../shared/data/published/``: DC/DSA/DM
result files, MTT save directories, DD-Ranking folders), imported with
:func:`bench.published.importers.import_set` (format and ZCA detected, as ``dasm-bench import`` does) and
evaluated with :data:`SOURCE_PROTOCOL`:

- DC/DSA/DM result files: the protocol their source printed its numbers under, from the file name
  (:func:`bench.published.formats.dc_source_protocol`): DSA and DM ``dc`` (1000 epochs + 1, DSA,
  lr 0.01), DC ``dc-nodsa`` (300 epochs + 1, no augmentation; ``dc-aug`` on MNIST);
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
import dataclasses
import io
import math
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from bench.data.datasets import Dataset
from bench.errors import BenchError
from bench.files import write_atomically

SOURCE_PROTOCOL = {"mtt": "mtt", "ddranking": "mtt"}  # "dc" files: their method's, read on import


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
    code_version: str = ""  # of the code that imported and evaluated the set (older tables lack it)


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
    from bench.files import refuse_link
    from bench.protocols import get_protocol
    from bench.published.importers import import_set
    from bench.train.evaluation import evaluate_synthetic

    if not str(root).strip():  # Path("") is the working directory: each of its folders would be evaluated
        raise BenchError("the published sets folder is an empty path; give a folder of published sets")
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise BenchError(f"published sets folder {root} " + ("is not a folder" if root.exists() else "does not exist"))
    refuse_link(out / "sets", "published output folder")  # a planted link would send every set elsewhere
    # the output directory inside the root (a second run) is not a published set
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.resolve() != out.resolve())
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
        # a DC/DSA/DM file's own protocol was read from its name on import (see the module docstring)
        name = syn.metadata["eval_protocol"] if info["format"] == "dc" else SOURCE_PROTOCOL[info["format"]]
        protocol = get_protocol(name, epochs)
        res = evaluate_synthetic(syn, data, arch, protocol, models, seed, device, progress=progress)
        lr = float(syn.metadata["syn_lr"]) if protocol.lr_from_set and "syn_lr" in syn.metadata else protocol.lr
        rows.append(PublishedRow(folder.name, info["format"], len(syn), syn.metadata.get("ipc"), info["labels"],
                                 "zca" in syn.metadata, protocol.name, lr, arch, models, res.last_mean,
                                 res.last_std, reported.get(folder.name, ""), _file_reported(info),
                                 str(syn.metadata.get("code_version", ""))))
        write_table(rows, out, data.name)
    return rows


_MEAN_STD = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\+-|±)\s*(\d+(?:\.\d+)?)")


def reported_number(text: str) -> tuple[float, float] | None:
    """The first ``mean +- std`` of a reported cell (the paper's, as the README lists it first), or
    None when the README says none was published for the file ("none published ...").

    Example::

        reported_number("DC paper 28.3 +- 0.5; the file's own 28.03 +- 0.60")   # (28.3, 0.5)
    """
    if text.strip().lower().startswith("none"):
        return None
    found = _MEAN_STD.search(text)
    return (float(found.group(1)), float(found.group(2))) if found else None


def write_table(rows: list[PublishedRow], out: Path, dataset: str) -> None:
    """``published.csv`` (every field) and ``published.md`` (measured next to reported)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(rows[0])), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    write_atomically(out / "published.csv", buf.getvalue())
    write_atomically(out / "published.md", table_markdown(rows, dataset))


def table_markdown(rows: list[PublishedRow], dataset: str) -> str:
    """The measured-vs-reported table with the difference from the first reported number and whether
    it lies within the combined spread sqrt(std_measured² + std_reported²)."""
    lines = [f"# Published sets re-evaluated on {dataset}", "",
             "| set | format | IPC | labels | ZCA | protocol (lr) | measured (last epoch) | reported | file's own "
             "| difference | within spread |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        number = reported_number(r.reported)
        if number is None:
            diff = within = "-"
        else:
            d = r.measured_mean - number[0]
            diff, within = f"{d:+.2f}", "yes" if abs(d) <= math.hypot(r.measured_std, number[1]) else "no"
        lines.append(f"| {r.folder} | {r.format} | {r.ipc} | {r.labels} | {'yes' if r.zca else 'no'} | "
                     f"{r.protocol} ({r.lr:g}) | {r.measured_mean:.2f} ± {r.measured_std:.2f} "
                     f"({r.models} × {r.arch}) | {r.reported or '-'} | {r.file_reported or '-'} | {diff} | {within} |")
    versions = sorted({r.code_version for r in rows if r.code_version})
    lines += ["", "Measured: mean ± sample std over the models (one fresh ConvNet-3 each), last-epoch test accuracy "
              f"(%) on {dataset}. Difference: measured - the first reported mean (the paper's); within spread: "
              "|difference| <= sqrt(std_measured² + std_reported²)."
              + (f" Code version: {', '.join(versions)}." if versions else "")]
    return "\n".join(lines) + "\n"


def read_table(out: Path) -> list[PublishedRow]:
    """The rows of ``out/published.csv`` (a table written by :func:`write_table`, older ones included)."""
    from bench.files import read_regular

    path = Path(out) / "published.csv"
    rows = []
    types = {f: t for f, t in PublishedRow.__annotations__.items()}
    try:
        text = read_regular(path, "published-sets table").decode("utf-8")
        for raw in csv.DictReader(io.StringIO(text)):
            fields = {}
            for name, kind in types.items():
                value = raw.get(name) or ""
                if "int" in kind:
                    fields[name] = int(value) if value not in ("", "None") else None
                elif "float" in kind:
                    fields[name] = float(value)
                elif "bool" in kind:
                    fields[name] = value == "True"
                else:
                    fields[name] = value
            rows.append(_checked_row(PublishedRow(**fields), path))
    except (TypeError, ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise BenchError(f"{path} is not a published-sets table: {str(exc).splitlines()[0][:160]}") from None
    if not rows:
        raise BenchError(f"{path} holds no rows")
    return rows


def _checked_row(row: PublishedRow, path: Path) -> PublishedRow:
    """Every number of a table row in the range ``evaluate_published`` writes, and a folder that is
    one plain name: ``plot`` loads ``sets/<folder>.safetensors`` and prints the numbers."""
    from bench.bounds import MAX_COUNT, MAX_IPC, MAX_LR, MAX_MODELS, check_int, check_number

    where = f"{path}: row {row.folder!r}"
    if not row.folder or row.folder in (".", "..") or any(c in row.folder for c in "/\\\x00"):
        raise BenchError(f"{where}: folder must be one plain name (a sub-folder of the published root)")
    check_int(row.images, f"{where}: images", 1, MAX_COUNT)
    if row.ipc is not None:
        check_int(row.ipc, f"{where}: ipc", 1, MAX_IPC)
    check_int(row.models, f"{where}: models", 1, MAX_MODELS)
    check_number(row.lr, f"{where}: lr", 0, MAX_LR, low_open=True)
    check_number(row.measured_mean, f"{where}: measured_mean", 0, 100)
    check_number(row.measured_std, f"{where}: measured_std", 0, 100)
    return row


def render_table(out: Path) -> Path:
    """Rewrite ``out/published.md`` from ``out/published.csv`` (``dasm-bench plot OUT``): the table's
    layout may change, its numbers are never recomputed. The dataset, and the code version when the
    CSV predates that column, come from the imported sets under ``out/sets``."""
    from bench.store.synthetic import SyntheticSet

    out = Path(out)
    rows = read_table(out)
    dataset = ""
    for i, row in enumerate(rows):
        path = out / "sets" / f"{row.folder}.safetensors"
        if not path.is_file():
            raise BenchError(f"{path} is missing: the table's set {row.folder!r} is not under {out / 'sets'}")
        meta = SyntheticSet.load(path).metadata
        dataset = dataset or str(meta.get("dataset", ""))
        if not row.code_version:
            rows[i] = dataclasses.replace(row, code_version=str(meta.get("code_version", "")))
    path = out / "published.md"
    write_atomically(path, table_markdown(rows, dataset))
    return path
