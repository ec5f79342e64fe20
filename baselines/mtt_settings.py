"""MTT's per-setting hyper-parameters, each row from the published command it reproduces.

Sources:

- MTT (GeorgeCazenavette/mtt-distillation, ``readme.md``: the distill command for CIFAR-100
  IPC 1 and the "full list of hyper-parameters" table, the paper's Table 6, with columns
  syn_steps, expert_epochs, max_start_epoch, batch_syn, ZCA, lr_img, lr_lr, lr_teacher).
  Every row is a ``distill.py`` command; ``--Iteration`` is the default 5000 everywhere.
  ``distill.py`` loops ``for it in range(0, args.Iteration+1)`` but evaluates and saves the
  images of iteration ``it`` BEFORE that iteration's update, so the last evaluated set has had
  exactly ``Iteration`` updates: our ``iterations`` updates are that set.
- DATM (NUS-HPC-AI-Lab/DATM, ``configs/CIFAR-10/ConvIN/IPC500.yaml``, ``IPC1000.yaml``,
  ``configs/CIFAR-100/ConvIN/IPC100.yaml``, and ``README.md``'s buffer command with
  ``--train_epochs=100``): MTT publishes nothing above IPC 50, DATM does. We take DATM's
  trajectory-matching values (syn_steps, expert_epochs, start window, lr_img, lr_teacher, lr_lr,
  batch_syn, ZCA, 10000 iterations, 100-epoch experts) but not its additions to MTT (soft
  labels ``lr_y``, EMA, ``samples_predicted_correctly`` initialisation): the method stays MTT.
  These rows use the ``checkpointed`` gradient (the exact MTT gradient in one step's
  activation memory); an unrolled graph over 40-100 steps of 1,000 images does not fit a GPU.

Any other IPC above 50 at CIFAR scale has no published setting: the config carries the reason
in ``no_reference`` and ``MTTConfig.validate`` refuses it in one line (clear it with
``--set no_reference=`` after giving every value by hand).

Example::

    from baselines.mtt_settings import reference_setting
    reference_setting("cifar10", 1)["lr_lr"]   # 1e-07
"""

from __future__ import annotations

from typing import Any

# (dataset, ipc) -> MTTConfig keyword values. Keys not listed keep the MTTConfig defaults
# (distill.py / buffer.py defaults: lr_lr 1e-5, 100 experts x 50 epochs, expert lr 0.01).
REFERENCE_SETTINGS: dict[tuple[str, int], dict[str, Any]] = {
    # mtt-distillation readme.md table, CIFAR-10 IPC 1:
    # distill.py --dataset=CIFAR10 --ipc=1 --syn_steps=50 --expert_epochs=2 --max_start_epoch=2 --zca
    #   --lr_img=100 --lr_lr=1e-07 --lr_teacher=0.01
    ("cifar10", 1): dict(syn_steps=50, expert_epochs=2, max_start_epoch=2, zca=True, lr_img=100.0,
                         lr_lr=1e-7, lr_teacher=0.01),
    # CIFAR-10 IPC 10: --ipc=10 --syn_steps=30 --expert_epochs=2 --max_start_epoch=20 --zca
    #   --lr_img=100 --lr_lr=1e-05 --lr_teacher=0.001
    ("cifar10", 10): dict(syn_steps=30, expert_epochs=2, max_start_epoch=20, zca=True, lr_img=100.0,
                          lr_lr=1e-5, lr_teacher=0.001),
    # CIFAR-10 IPC 50: --ipc=50 --syn_steps=30 --expert_epochs=2 --max_start_epoch=40 (no --zca)
    #   --lr_img=1000 --lr_lr=1e-05 --lr_teacher=0.001
    ("cifar10", 50): dict(syn_steps=30, expert_epochs=2, max_start_epoch=40, zca=False, lr_img=1000.0,
                          lr_lr=1e-5, lr_teacher=0.001),
    # mtt-distillation readme.md, the printed command, CIFAR-100 IPC 1:
    # distill.py --dataset=CIFAR100 --ipc=1 --syn_steps=20 --expert_epochs=3 --max_start_epoch=20 --zca
    #   --lr_img=1000 --lr_lr=1e-05 --lr_teacher=0.01
    ("cifar100", 1): dict(syn_steps=20, expert_epochs=3, max_start_epoch=20, zca=True, lr_img=1000.0,
                          lr_lr=1e-5, lr_teacher=0.01),
    # CIFAR-100 IPC 10: --ipc=10 --syn_steps=20 --expert_epochs=2 --max_start_epoch=20 (no --zca)
    #   --lr_img=1000 --lr_lr=1e-05 --lr_teacher=0.01
    ("cifar100", 10): dict(syn_steps=20, expert_epochs=2, max_start_epoch=20, zca=False, lr_img=1000.0,
                           lr_lr=1e-5, lr_teacher=0.01),
    # CIFAR-100 IPC 50: --ipc=50 --syn_steps=80 --expert_epochs=2 --max_start_epoch=40 --batch_syn=125
    #   --zca --lr_img=1000 --lr_lr=1e-05 --lr_teacher=0.01
    ("cifar100", 50): dict(syn_steps=80, expert_epochs=2, max_start_epoch=40, batch_syn=125, zca=True,
                           lr_img=1000.0, lr_lr=1e-5, lr_teacher=0.01),
    # DATM configs/CIFAR-10/ConvIN/IPC500.yaml: syn_steps 40, expert_epochs 2, lr_img 50, lr_teacher 0.01,
    # Iteration 10000, batch_syn 1000, min/max_start_epoch 40/60, lr_lr 1e-5, zca; experts 100 epochs
    ("cifar10", 500): dict(syn_steps=40, expert_epochs=2, min_start_epoch=40, max_start_epoch=60, zca=True,
                           lr_img=50.0, lr_lr=1e-5, lr_teacher=0.01, batch_syn=1000, iterations=10000,
                           train_epochs=100, gradient_mode="checkpointed"),
    # DATM configs/CIFAR-10/ConvIN/IPC1000.yaml: as IPC 500 but syn_steps 100
    ("cifar10", 1000): dict(syn_steps=100, expert_epochs=2, min_start_epoch=40, max_start_epoch=60, zca=True,
                            lr_img=50.0, lr_lr=1e-5, lr_teacher=0.01, batch_syn=1000, iterations=10000,
                            train_epochs=100, gradient_mode="checkpointed"),
    # DATM configs/CIFAR-100/ConvIN/IPC100.yaml: syn_steps 80, expert_epochs 2, lr_img 50, lr_teacher
    # 0.01, Iteration 10000, batch_syn 1000, min/max_start_epoch 30/70, lr_lr 1e-5, zca
    ("cifar100", 100): dict(syn_steps=80, expert_epochs=2, min_start_epoch=30, max_start_epoch=70, zca=True,
                            lr_img=50.0, lr_lr=1e-5, lr_teacher=0.01, batch_syn=1000, iterations=10000,
                            train_epochs=100, gradient_mode="checkpointed"),
}

PAPER_SCALE = ("cifar10", "cifar100")


def reference_setting(dataset: str, ipc: int) -> dict[str, Any] | None:
    """The published values for (dataset, ipc): the exact row, else (IPC <= 50) the row of the
    next published IPC above it (MTT's own choice for in-between sizes is unpublished; the next
    row's longer trajectories are the conservative side), else None (no reference)."""
    name = dataset.lower()
    if (name, ipc) in REFERENCE_SETTINGS:
        return dict(REFERENCE_SETTINGS[(name, ipc)])
    if ipc <= 50:
        above = sorted(i for (d, i) in REFERENCE_SETTINGS if d == name and i >= ipc)
        return dict(REFERENCE_SETTINGS[(name, above[0])]) if above else None
    return None


def refusal(dataset: str, ipc: int) -> str:
    """Why (dataset, ipc) has no reference setting, in one line."""
    published = sorted(i for (d, i) in REFERENCE_SETTINGS if d == dataset.lower())
    return (f"no published MTT/DATM setting for {dataset} IPC {ipc} (published: IPC "
            f"{', '.join(map(str, published))}); MTT's IPC-50 values with an unrolled full-batch graph would "
            f"not fit in GPU memory at this size")
