"""Optional TensorBoard logging of long runs: offline event files, no server, nothing uploaded.

``dasm-bench run SPEC --tensorboard DIR`` (and ``grid``) writes, as each cell finishes:

- ``acc_last/<dataset>/<method>/<protocol>/<arch>/ipc<N>``: the cell's last-epoch test accuracy,
  one point per seed (step = seed), so the spread over seeds is visible as it fills in;
- once per synthetic set, the curves the set stores in its metadata (:mod:`bench.report.curves`):
  ``distill/<method>/ipc<N>/s<seed>/<curve>`` with one step per distillation iteration, and DASM's
  per-segment validation accuracy (step = segment).

``tensorboard --logdir DIR`` shows them. The event files are written by the parent process only
(the rows arrive there), so any executor, Slurm included, logs the same way. Needs the optional
``tensorboard`` package (``pip install "dasm-bench[tensorboard]"``).

Example::

    log = ScalarLog("runs/tb")
    log.cell(row, results_dir)     # a results row as the runner writes it
    log.close()
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.paths import safe_slug


class ScalarLog:
    """Writes results rows and their sets' stored curves as TensorBoard scalars under ``logdir``."""

    def __init__(self, logdir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise BenchError("--tensorboard needs the tensorboard package: pip install tensorboard "
                             "(or the dasm-bench[tensorboard] extra)") from None
        self.logdir = Path(logdir)
        self._writer = SummaryWriter(log_dir=str(self.logdir))
        self._sets: set[str] = set()

    def cell(self, row: dict[str, Any], results_dir: str | os.PathLike | None = None) -> None:
        """Log one finished cell, and its set's stored curves the first time the set is seen."""
        parts = [safe_slug(str(row.get(k, "?"))) for k in ("dataset", "method", "protocol", "arch")]
        tag = "acc_last/" + "/".join(parts) + f"/ipc{int(row.get('ipc', 0))}"
        seed = int(row.get("seed", 0) or 0)
        if row.get("acc_last") is not None:
            self._writer.add_scalar(tag, float(row["acc_last"]), global_step=seed)
        syn_path = row.get("synthetic_path")
        if syn_path and results_dir is not None and str(syn_path) not in self._sets:
            self._sets.add(str(syn_path))
            self._set_curves(Path(results_dir) / str(syn_path), row)
        self._writer.flush()

    def _set_curves(self, syn_path: Path, row: dict[str, Any]) -> None:
        from bench.report.curves import stored_curves
        from bench.store.synthetic import sidecar_path

        sidecar = sidecar_path(syn_path)
        try:
            metadata = json.loads(sidecar.read_text()).get("metadata", {})
        except (OSError, ValueError, AttributeError):
            return  # no readable sidecar (a set on another node's disk): the accuracy is still logged
        curves = stored_curves(metadata if isinstance(metadata, dict) else {})
        prefix = f"distill/{safe_slug(str(row.get('method')))}/ipc{int(row.get('ipc', 0))}/s{int(row.get('seed', 0))}"
        for label, values in curves.loss_segments:
            for step, value in enumerate(values):
                self._writer.add_scalar(f"{prefix}/{safe_slug(label)}/matching_loss", value, global_step=step)
        for segment, accuracy in curves.validation:
            self._writer.add_scalar(f"{prefix}/val_accuracy", accuracy, global_step=segment)

    def close(self) -> None:
        self._writer.close()
