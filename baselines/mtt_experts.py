"""MTT expert trajectories: expert training and a resumable on-disk buffer.

MTT (Cazenavette et al., CVPR 2022; GeorgeCazenavette/mtt-distillation ``buffer.py``) first trains
``num_experts`` networks on the REAL training split and records their parameters after every
epoch. Facts followed here (GeorgeCazenavette/mtt-distillation ``buffer.py`` and its README):

* SGD at ``lr`` (the reference's ``--lr_teacher`` of buffer.py, 0.01), momentum 0, weight decay 0,
  batch 256, no lr decay (``--decay`` is off by default), ``train_epochs`` epochs (50);
* DSA on every training batch with per-image parameters (the reference's ``DiffAugment`` with
  ``Siamese=False``), strategy of the dataset (no flip for digits, see ``strategy_for``);
* a snapshot before training and after every epoch: ``epochs + 1`` snapshots.

Storage (ours; the reference pickles lists of tensors with ``torch.save``): one safetensors file per
expert, ``expert_0000.safetensors`` ..., holding ``trajectory`` = float32 ``(epochs + 1, P)`` flat
parameter vectors in ``model.named_parameters()`` order, written atomically (write a temp file,
then rename). The directory is keyed by (dataset, arch, lr, zca, epochs), so runs that need the
same experts share them; settings outside the key (batch, DSA, expert seed) get a hash suffix only
when they differ from the defaults. A killed build leaves finished experts (kept and skipped on the
next build) and at most a ``.expert_*.tmp`` file (ignored). A damaged expert file is rebuilt.

ZCA (``zca=True``): experts train in whitened space; the transform (:class:`bench.data.zca.ZCAWhitening`,
the reference's kornia ``ZCAWhitening(eps=0.1)`` on [0, 1] pixels) is fitted once per buffer and
stored there as ``zca.safetensors``. Parameters are flat vectors (:class:`baselines.flat_params.ParamLayout`).

Example::

    from bench.data.datasets import load_dataset
    from baselines.mtt_experts import ExpertSettings, ExpertBuffer

    data = load_dataset("digits")
    buf = ExpertBuffer.build(data, ExpertSettings("digits", "convnet", epochs=10), "results/cache/mtt_buffers",
                             num_experts=5)
    start, target = buf.load_epochs(0, [2, 4])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.flat_params import ParamLayout
from bench.data.datasets import Dataset, ImageSet

# ZCA moved to the harness (bench.data.zca); imported here so older `from baselines.mtt_experts import
# ZCAWhitening` lines keep working
from bench.data.zca import ZCA_EPS, ZCA_FORMAT, ZCAWhitening, from_pixels, to_pixels  # noqa: F401
from bench.errors import BenchError
from bench.files import write_atomically
from bench.paths import safe_slug
from bench.train.evaluation import accuracy
from bench.train.loop import guarded_step

EXPERT_FORMAT = "dasm-bench/mtt-expert"

# ----------------------------------------------------------------------------- experts

@dataclass(frozen=True)
class ExpertSettings:
    """Everything that determines an expert trajectory (reference buffer.py defaults).

    ``lr`` is buffer.py's ``--lr_teacher`` (the experts' SGD lr, 0.01 for all reference buffers);
    it is not the distiller's syn_lr initialisation, which distill.py also calls ``lr_teacher``.
    """

    dataset: str
    arch: str = "convnet"
    lr: float = 0.01
    zca: bool = False
    epochs: int = 50
    batch_size: int = 256
    dsa: bool = True
    seed: int = 0
    train_split: str = "full"  # bench.data.datasets: the references train experts on the whole training set

    def key(self) -> str:
        """Folder name: the (lr, zca, epochs) key plus a hash suffix for non-default extras."""
        name = f"lr{self.lr:g}_{'zca' if self.zca else 'nozca'}_ep{self.epochs}"
        extras = {"batch_size": self.batch_size, "dsa": self.dsa, "seed": self.seed}
        if self.train_split != "train-val":
            # folders without this suffix were built before the split existed, on "train-val"
            extras["train_split"] = self.train_split
        if extras != {"batch_size": 256, "dsa": True, "seed": 0}:
            name += "_" + hashlib.sha256(json.dumps(extras, sort_keys=True).encode()).hexdigest()[:8]
        return name

    def directory(self, root: str | os.PathLike) -> Path:
        return Path(root) / safe_slug(self.dataset) / safe_slug(self.arch) / self.key()


def expert_model(data: Dataset, settings: ExpertSettings, expert: int) -> nn.Module:
    """The freshly initialised network of expert ``expert`` (seeded: the same on every build)."""
    from bench.train.models import create_model

    torch.manual_seed(_expert_seed(settings, expert))
    return create_model(settings.arch, data.channels, data.num_classes, data.image_size)


def _expert_seed(settings: ExpertSettings, expert: int) -> int:
    return settings.seed * 1_000_003 + expert


def train_expert(data: Dataset, settings: ExpertSettings, expert: int, images: Tensor, labels: Tensor,
                 device: torch.device, val: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, float | None]:
    """Train one expert on (images, labels) (the whole real training split, already in the expert's
    input space); returns its ``(epochs + 1, P)`` trajectory and, given ``val``, its final accuracy."""
    from bench.train.augmentation import DSA, strategy_for

    model = expert_model(data, settings, expert).to(device).train()
    layout = ParamLayout(model)
    gen = torch.Generator()
    gen.manual_seed(_expert_seed(settings, expert) + 7)
    # reference buffer.py: SGD(lr_teacher, momentum=0, weight_decay=0), no decay by default
    opt = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=0.0, weight_decay=0.0)
    aug = DSA(strategy_for(settings.dataset), siamese=False) if settings.dsa else None
    snapshots = [layout.flatten().cpu()]
    n = len(images)
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=gen)
        for s in range(0, n, settings.batch_size):
            idx = order[s:s + settings.batch_size]
            x, y = images[idx].to(device), labels[idx].to(device)
            if aug is not None:
                x = aug(x, gen)
            loss = F.cross_entropy(model(x), y)
            guarded_step(opt, loss, lambda v: f"expert {expert} diverged at epoch {epoch} (lr {settings.lr:g}); "
                                              f"lower the expert lr")
        snapshots.append(layout.flatten().cpu())
    acc = None
    if val is not None:  # val images are already in the expert's input space: identity normalisation
        acc = accuracy(model, ImageSet(val[0], val[1], data.num_classes, (0.0,) * data.channels,
                                       (1.0,) * data.channels), device)
    return torch.stack(snapshots), acc


class ExpertBuffer:
    """A folder of expert trajectories for one :class:`ExpertSettings` (see the module docstring).

    Example::

        buf = ExpertBuffer.build(data, ExpertSettings("digits", epochs=10), root, num_experts=5)
        pair = buf.load_epochs(expert=3, epochs=[4, 6])   # 2 x P float32
    """

    def __init__(self, directory: Path, settings: ExpertSettings, layout: ParamLayout,
                 zca: ZCAWhitening | None) -> None:
        self.directory = directory
        self.settings = settings
        self.layout = layout
        self.zca = zca
        self._experts: list[Path] = []

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, data: Dataset, settings: ExpertSettings, root: str | os.PathLike, num_experts: int,
              device: torch.device | str = "cpu", progress: bool = False) -> "ExpertBuffer":
        """Open the buffer for ``settings`` under ``root`` and train the experts it lacks.

        Finished experts are kept and skipped; temp files of a killed build are ignored; a file
        that does not parse or has the wrong shape is rebuilt.
        """
        from tqdm.auto import tqdm

        if num_experts < 1:
            raise BenchError(f"num_experts must be >= 1, got {num_experts}")
        if getattr(data, "train_split", "train-val") != settings.train_split:
            raise BenchError(f"experts on the {settings.train_split!r} training split need a dataset loaded with "
                             f"train_split={settings.train_split!r}")
        device = torch.device(device)
        directory = settings.directory(root)
        directory.mkdir(parents=True, exist_ok=True)
        layout = ParamLayout(expert_model(data, settings, 0))
        zca = cls._zca_for(data, settings, directory)
        buf = cls(directory, settings, layout, zca)
        buf._write_manifest()
        missing = [e for e in range(num_experts) if not buf._is_complete(e)]
        if missing:
            images, labels = data.train.images, data.train.labels
            val = (data.val.images, data.val.labels)
            if zca is not None:
                images = zca.whiten_normalised(images, data)
                val = (zca.whiten_normalised(val[0], data), val[1])
            bar = tqdm(missing, desc=f"mtt experts {data.name}/{settings.arch}", disable=not progress,
                       leave=False)
            for e in bar:
                trajectory, acc = train_expert(data, settings, e, images, labels, device, val)
                buf._save_expert(e, trajectory, acc)
                bar.set_postfix(val_acc=f"{acc:.1f}")
        buf._experts = [buf.expert_path(e) for e in range(num_experts)]
        return buf

    @staticmethod
    def _zca_for(data: Dataset, settings: ExpertSettings, directory: Path) -> ZCAWhitening | None:
        if not settings.zca:
            return None
        path = directory / "zca.safetensors"
        if path.exists():
            try:
                return ZCAWhitening.load(path)
            except BenchError:
                pass  # damaged: refit (deterministic) and overwrite
        zca = ZCAWhitening.fit(to_pixels(data.train.images, data))
        zca.save(path)
        return zca

    def _write_manifest(self) -> None:
        manifest = {"format": EXPERT_FORMAT, "settings": dataclasses.asdict(self.settings),
                    "parameters": self.layout.describe(), "num_parameters": self.layout.size,
                    "zca_file": "zca.safetensors" if self.settings.zca else None}
        path = self.directory / "manifest.json"
        text = json.dumps(manifest, indent=2, sort_keys=True)
        if not path.exists() or path.read_text() != text:
            write_atomically(path, text.encode())

    def expert_path(self, expert: int) -> Path:
        return self.directory / f"expert_{expert:04d}.safetensors"

    def _is_complete(self, expert: int) -> bool:
        """A finished, readable expert file of the right shape (anything else is rebuilt)."""
        from safetensors import safe_open

        path = self.expert_path(expert)
        if not path.exists():
            return False
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                shape = tuple(f.get_slice("trajectory").get_shape())
        except Exception:
            return False
        return (meta.get("format") == EXPERT_FORMAT
                and shape == (self.settings.epochs + 1, self.layout.size)
                and meta.get("parameters") == json.dumps(self.layout.describe()))

    def _save_expert(self, expert: int, trajectory: Tensor, val_accuracy: float | None) -> None:
        from safetensors.torch import save as st_save

        meta = {"format": EXPERT_FORMAT, "expert": str(expert),
                "settings": json.dumps(dataclasses.asdict(self.settings), sort_keys=True),
                "parameters": json.dumps(self.layout.describe()),
                "val_accuracy": "" if val_accuracy is None else f"{val_accuracy:.4f}"}
        write_atomically(self.expert_path(expert), st_save({"trajectory": trajectory.float().contiguous()}, meta))

    # ------------------------------------------------------------------ reading
    @property
    def num_experts(self) -> int:
        return len(self._experts)

    def load_epochs(self, expert: int, epochs: Sequence[int]) -> Tensor:
        """Snapshots ``epochs`` of one expert as a ``len(epochs) x P`` tensor (reads only those rows)."""
        from safetensors import safe_open

        with safe_open(str(self._experts[expert]), framework="pt") as f:
            rows = f.get_slice("trajectory")
            return torch.stack([rows[e:e + 1][0] for e in epochs])

    def load_trajectory(self, expert: int) -> Tensor:
        from safetensors import safe_open

        with safe_open(str(self._experts[expert]), framework="pt") as f:
            return f.get_tensor("trajectory")

    def val_accuracy(self, expert: int) -> float | None:
        from safetensors import safe_open

        with safe_open(str(self._experts[expert]), framework="pt") as f:
            value = (f.metadata() or {}).get("val_accuracy", "")
        return float(value) if value else None
