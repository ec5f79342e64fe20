"""The evaluation protocols by name: how a fresh model is trained on a (synthetic) training set.
Torch-free, so the command line can list them in its help without importing torch;
:mod:`bench.train.evaluation` runs them.

Protocols differ between the reference papers, so every result row names its protocol:

- ``dc``   (DC/DSA/DM; VICO-UoE/DatasetCondensation ``utils.py`` ``evaluate_synset``): SGD momentum
           0.9, wd 5e-4, lr 0.01, batch 256, DSA (one op per batch, per-image parameters); it runs
           ``E + 1`` epochs (E = 1000) and after epoch ``E // 2 + 1`` (0-based) multiplies the lr by
           0.1 and builds a NEW SGD optimizer, so the momentum buffer restarts.
- ``dc-nodsa``: the same schedule without augmentation, E = 300 (DC on every dataset but MNIST).
- ``dc-aug``: DC's own evaluation on MNIST (``get_daparam``: ``crop_scale_rotate``, one op per
           image, E = 1000). :func:`reference_protocol` picks it instead of ``dc-nodsa`` for
           MNIST-like datasets (``mnist``, ``mnist5k``).
- ``idc``  (IDC; snu-mllab/Efficient-Dataset-Condensation ``train.py``): IDC's ``DiffAug`` - flip
           and colour on every batch, then one of crop/scale/rotate - plus CutMix (beta 1, p 0.5),
           batch 64, lr 0.01, MultiStepLR x0.2 at epochs ``2E // 3`` and ``5E // 6``, E = 1000.
- ``mtt``  (MTT): the ``dc`` schedule at the learned synthetic lr stored with the set
           (mtt-distillation ``evaluate_synset``).

Example::

    get_protocol("dc-nodsa@300ep").epochs     # 300
    sorted(PROTOCOLS)                         # every protocol name the CLI accepts
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bench.bounds import MAX_EPOCHS
from bench.errors import BenchError

SCHEDULES = ("dc", "multistep")
AUGMENTS = ("dsa", "idc", "dc-aug")
MNIST_LIKE: frozenset[str] = frozenset({"mnist", "mnist5k"})


@dataclass(frozen=True)
class EvalProtocol:
    """How a fresh model is trained on a (synthetic) training set.

    ``schedule="dc"``: the reference ``evaluate_synset`` (``epochs + 1`` passes, lr x ``gamma``
    after pass ``epochs // 2 + 1`` with a new optimizer); ``"multistep"``: ``epochs`` passes and
    MultiStepLR at ``int(f * epochs)`` for each fraction ``f`` in ``milestones`` (IDC).
    ``augment`` (when ``dsa``): ``"dsa"`` DC's DiffAugment, ``"idc"`` IDC's DiffAug order,
    ``"dc-aug"`` DC's per-image ``crop_scale_rotate``.
    """

    name: str = "dc"
    epochs: int = 1000
    batch_size: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "dc"
    milestones: tuple[float, ...] = ()      # multistep only: fractions of `epochs` where lr *= gamma
    gamma: float = 0.1
    dsa: bool = True                        # augment at all
    augment: str = "dsa"
    cutmix_prob: float = 0.0
    cutmix_beta: float = 1.0
    lr_from_set: bool = False               # MTT: train at the synthetic set's learned lr (metadata "syn_lr")

    def with_epochs(self, epochs: int) -> "EvalProtocol":
        """The same protocol at another budget (tests and CPU runs); the name records it."""
        if epochs <= 0:
            raise BenchError(f"epochs must be positive, got {epochs}")
        if epochs == self.epochs:
            return self
        return dataclasses.replace(self, epochs=epochs, name=f"{self.name.split('@')[0]}@{epochs}ep")


PROTOCOLS: dict[str, EvalProtocol] = {
    "dc": EvalProtocol(),
    "dc-nodsa": EvalProtocol(name="dc-nodsa", epochs=300, dsa=False),
    # DC on MNIST: VICO-UoE/DatasetCondensation utils.py get_daparam ('crop_scale_rotate') and
    # main.py (epoch_eval_train = 1000 when the strategy is not 'none')
    "dc-aug": EvalProtocol(name="dc-aug", epochs=1000, augment="dc-aug"),
    # IDC: snu-mllab/Efficient-Dataset-Condensation train.py train() (MultiStepLR [2E//3, 5E//6],
    # gamma 0.2; DiffAug(batch=False); cutmix with mix_p 0.5) and argument.py (epochs 1000, batch 64,
    # cutout removed when mixup is 'cut')
    "idc": EvalProtocol(name="idc", epochs=1000, batch_size=64, schedule="multistep", milestones=(2 / 3, 5 / 6),
                        gamma=0.2, augment="idc", cutmix_prob=0.5),
    "mtt": EvalProtocol(name="mtt", lr_from_set=True),
}


def reference_protocol(name: str, dataset: str) -> str:
    """The protocol a method's reference uses on ``dataset``: DC's ``dc-nodsa`` becomes ``dc-aug``
    on MNIST-like data (VICO-UoE/DatasetCondensation ``utils.py`` ``get_daparam`` augments only
    ``MNIST``; ``mnist5k`` is an MNIST subset). The 8x8 ``digits`` set is not MNIST and keeps
    ``dc-nodsa``: the reference's rule for every other dataset is no augmentation, and a 4-of-28
    pixel crop and 45-degree rotation were never tuned for 8x8 images.

    Example::

        reference_protocol("dc-nodsa", "mnist5k")   # 'dc-aug'
        reference_protocol("dc-nodsa", "digits")    # 'dc-nodsa'
    """
    base, _, budget = name.partition("@")
    if base == "dc-nodsa" and dataset.strip().lower() in MNIST_LIKE:
        return "dc-aug" + (f"@{budget}" if budget else "")
    return name


def get_protocol(name: str, epochs: int | None = None) -> EvalProtocol:
    """A protocol by name, optionally at a budget: ``dc``, ``dc-nodsa@300ep``; ``epochs`` wins
    over a budget in the name. A malformed name or a budget below 1 epoch is a one-line error."""
    if not isinstance(name, str):
        raise BenchError(f"an evaluation protocol is a name such as 'dc', got {name!r}")
    base, at, budget = name.partition("@")
    if base not in PROTOCOLS:
        raise BenchError(f"unknown evaluation protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    if at:
        digits = budget[:-2] if budget.endswith("ep") else ""
        if not digits.isdigit() or not digits.isascii():
            raise BenchError(f"evaluation protocol {name!r}: expected <protocol>@<N>ep, e.g. {base}@300ep")
        if len(digits) > len(str(MAX_EPOCHS)) or int(digits) > MAX_EPOCHS:  # "dc@99999999999999ep" never ends
            raise BenchError(f"evaluation protocol {name!r}: epochs must be an integer in [1, {MAX_EPOCHS}]")
        epochs = int(digits) if epochs is None else epochs
    if epochs is None:
        return PROTOCOLS[base]
    if isinstance(epochs, bool) or not isinstance(epochs, int):
        raise BenchError(f"epochs must be a positive integer, got {epochs!r}")
    if epochs > MAX_EPOCHS:
        raise BenchError(f"evaluation epochs must be an integer in [1, {MAX_EPOCHS}], got {epochs}")
    return PROTOCOLS[base].with_epochs(epochs)  # raises for epochs < 1
