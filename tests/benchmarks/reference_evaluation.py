"""Our evaluation epoch against the reference code's, run as its authors published it.

The reference side imports ``utils.py`` and ``networks.py`` of a checkout of
VICO-UoE/DatasetCondensation (``fetch`` it; keep it outside this tree: nothing of it is copied here)
and calls its own ``evaluate_synset`` (utils.py:337-361) with the arguments its ``main_DM.py``
(lines 16-38) sets for CIFAR-10: ConvNet-3 from ``get_network('ConvNet', 3, 10, (32, 32))``, lr
0.01, batch 256, DSA strategy ``color_crop_cutout_flip_scale_rotate`` with ``ParamDiffAug()``.
Ours is ``bench.train.evaluation.evaluate_training_set`` under protocol ``dc`` (the same training: SGD
momentum 0.9, weight decay 5e-4, DSA, batch 256), compile off, on the same images.

Both sides run in this one process, so the allocator, torch threads and library versions are the
same by construction; rounds alternate ours/reference. An epoch's cost is the difference of two
epoch counts, ``(t(E2) - t(E1)) / (E2 - E1)``, which cancels model construction and the one test
pass each side makes (over the first ``--test-images`` test images: that pass is not what is timed,
and over all 10,000 it would cost more than the epochs). Every timed run goes to the raw CSV; the table is
recomputed from it by ``tests/test_perf_numbers.py``.

    python tests/benchmarks/reference_evaluation.py --reference /work/ref-dc --data-root ../shared/data \
        --ipc 1,10 --rounds 5 --out results/perf
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

RAW = "reference_evaluation_raw.csv"
META = "reference_evaluation.json"


def reference_side(ref_dir: Path, images: torch.Tensor, labels: torch.Tensor, test_x, test_y):
    """A callable ``run(epochs)`` calling the reference's evaluate_synset on these images."""
    sys.path.insert(0, str(ref_dir))
    import utils as ref  # the reference checkout's utils.py, imported from outside this tree

    args = argparse.Namespace(device="cpu", lr_net=0.01, batch_train=256, dsa=True,
                              dsa_strategy="color_crop_cutout_flip_scale_rotate", dsa_param=ref.ParamDiffAug(),
                              dc_aug_param=None, epoch_eval_train=0)
    testloader = torch.utils.data.DataLoader(ref.TensorDataset(test_x, test_y), batch_size=256, shuffle=False,
                                             num_workers=0)

    def run(epochs: int) -> None:
        args.epoch_eval_train = epochs
        net = ref.get_network("ConvNet", 3, 10, (32, 32))
        ref.evaluate_synset(0, net, images, labels, testloader, args)

    return run


def our_side(data, images: torch.Tensor, labels: torch.Tensor, target):
    from bench.protocols import get_protocol
    from bench.train.acceleration import Acceleration, use_options
    from bench.train.evaluation import evaluate_training_set

    protocol = get_protocol("dc")

    def run(epochs: int) -> None:
        with use_options(Acceleration(compile="off")):
            evaluate_training_set(images, labels, data, "convnet", protocol.with_epochs(epochs), 1, 0, "cpu",
                                  target=target)

    return run


def summarise(raw) -> list[dict]:
    """Per IPC: each side's median seconds per epoch over rounds, and ours/reference's speed-up
    (reference seconds / ours, per round) as a median with its min-max. ``raw``: the raw DataFrame."""
    import statistics

    rows = []
    for ipc, at in raw.groupby("ipc"):
        per = {}
        for (side, r), g in at.groupby(["side", "round"]):
            t = g.set_index("epochs")["cpu_seconds"]
            (e1, t1), (e2, t2) = sorted(t.items())
            per.setdefault(side, {})[r] = (t2 - t1) / (e2 - e1)
        rounds = sorted(set(per["ours"]) & set(per["reference"]))
        speed = [per["reference"][r] / per["ours"][r] for r in rounds]
        rows.append({"ipc": int(ipc), "rounds": len(rounds),
                     "ours_ms": 1000 * statistics.median(per["ours"][r] for r in rounds),
                     "reference_ms": 1000 * statistics.median(per["reference"][r] for r in rounds),
                     "speedup": statistics.median(speed), "speedup_min": min(speed), "speedup_max": max(speed)})
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    """The table of ``reference_evaluation.md``: every number from :func:`summarise` of the raw CSV."""
    lines = ["| IPC | images | ours, ms per epoch | reference, ms per epoch | "
             "speed-up reference/ours, median (min-max) | rounds |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['ipc']} | {10 * r['ipc']} | {r['ours_ms']:.1f} | {r['reference_ms']:.1f} | "
                     f"{r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f}) | {r['rounds']} |")
    e1, e2 = meta["epochs"]
    return ("\n".join(lines) + f"\n\nOne evaluation epoch (ConvNet-3, DSA, lr 0.01, batch 256) on CIFAR-10 "
            f"(JPEG copy): "
            f"ours (`bench.train.evaluation`, code {meta['code_version']}) against {meta['reference_repo']} "
            f"`{meta['reference_call']}` at commit {meta['reference_commit'][:7]}, run as published, in one process "
            f"(allocator {meta['allocator']}, {meta['torch_threads']} torch thread, torch {meta['torch']}, "
            f"{meta['machine']}). Per round: (t({e2} epochs) - t({e1} epochs)) / {e2 - e1}, process CPU seconds, "
            f"rounds alternating ours/reference; raw runs in {RAW}.\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference", required=True, help="a checkout of VICO-UoE/DatasetCondensation")
    p.add_argument("--data-root", default="../shared/data")
    p.add_argument("--ipc", default="1,10")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--test-images", type=int, default=500)
    p.add_argument("--epochs", default="20,220", help="E1,E2: the two epoch counts whose difference is timed")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="results/perf")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import pandas as pd

    from bench.data.datasets import load_dataset
    from bench.files import write_atomically
    from bench.train.allocator import tune_allocator
    from bench.version import code_version

    allocator = tune_allocator()  # what our CLI runs under; the reference side shares this process
    version = code_version()  # at the start: the checkout may move while a long run runs
    data = load_dataset("cifar10-jpeg", a.data_root)
    e1, e2 = (int(x) for x in a.epochs.split(","))
    ref_dir = Path(a.reference).resolve()
    ref_commit = subprocess.run(["git", "-C", str(ref_dir), "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    rows = []
    for ipc in (int(x) for x in a.ipc.split(",")):
        g = torch.Generator().manual_seed(ipc)
        idx = torch.cat([torch.nonzero(data.train.labels == c).flatten()[
            torch.randperm(int((data.train.labels == c).sum()), generator=g)[:ipc]] for c in range(10)])
        images, labels = data.train.images[idx].clone(), data.train.labels[idx].clone()
        test = data.test.subset(torch.arange(a.test_images))
        sides = {"ours": our_side(data, images, labels, test),
                 "reference": reference_side(ref_dir, images, labels, test.images, test.labels)}
        for side in sides.values():
            side(1)  # warm-up: first-call costs (kernel selection, imports) are not an epoch's
        for r in range(a.rounds):
            for name, run in sides.items():
                for epochs in (e1, e2):
                    cpu, wall = time.process_time(), time.perf_counter()
                    run(epochs)
                    rows.append({"side": name, "ipc": ipc, "epochs": epochs, "round": r,
                                 "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall})
                    print(f"ipc {ipc} round {r} {name:>9} {epochs} epochs: {rows[-1]['wall_seconds']:.2f} s",
                          flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / RAW, pd.DataFrame(rows).to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    import json

    meta = {"code_version": version, "reference_repo": "VICO-UoE/DatasetCondensation",
            "reference_commit": ref_commit, "reference_call": "utils.evaluate_synset (utils.py:337-361)",
            "torch_threads": torch.get_num_threads(), "allocator": allocator, "torch": torch.__version__,
            "python": platform.python_version(), "machine": machine(), "dataset": "cifar10-jpeg",
            "protocol": "dc (DSA, lr 0.01, batch 256)", "epochs": [e1, e2], "rounds": a.rounds,
            "test_images": a.test_images,
            "load_average_end": os.getloadavg()[0]}
    write_atomically(out / META, json.dumps(meta, indent=2) + "\n")
    write_atomically(out / "reference_evaluation.md", markdown(summarise(pd.DataFrame(rows)), meta))
    print(f"wrote {out / RAW}, {out / META} and {out / 'reference_evaluation.md'}")
    return 0


def machine() -> str:
    from bench.perf.cost_model import machine_note

    return machine_note().rsplit(", load average", 1)[0]


if __name__ == "__main__":
    raise SystemExit(main())
