"""Evaluation training before/after: an old checkout against this one, side by side, alternating.

    git worktree add --detach /tmp/dasm-old <commit>
    python tests/benchmarks/evaluation_compare.py /tmp/dasm-old [--rounds 5] [--epochs 200] [--protocols dc,idc]

One evaluation run = a fresh seeded ConvNet trained under the protocol on the IPC-10 digits set (the
first 10 training images of each class), torch on one thread, as one evaluation model of a cell.
Arms, each a fresh process per round (their order rotates every round, so load drifts hit all alike):

- ``old``: the old checkout as it ran (eager; glibc's allocator defaults);
- ``new``: this checkout as its CLI and workers run it, eager (``DASM_COMPILE=off``), the allocator
  tuned (``bench/train/allocator.py``);
- ``new-compiled``: the same with ``DASM_COMPILE=on``.

Each process first trains a 2-epoch warm-up run (first-call costs, and the compile of the compiled
arm: printed as ``warm-up s``), then the timed run; CPU seconds (``time.process_time``) of the timed
run. Printed per protocol: median seconds per arm, the median per-round speed-up old/arm with its
min-max, and the test accuracy of each arm (equal for old and new: the same work, bit for bit).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from timed_child import run_child  # this directory: the scripts run as files

NEW = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, sys, time, torch
torch.set_num_threads(1)
arm, name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
if arm != "old":
    from bench.train.allocator import tune_allocator
    assert tune_allocator() == "tuned"
from bench.data.datasets import load_dataset
from bench.train.evaluation import accuracy, train_network
from bench.protocols import get_protocol
from bench.train.models import create_model
data = load_dataset("digits")
idx = torch.cat([ix[:10] for ix in data.train.indices_by_class])
images, labels = data.train.get(idx), data.train.labels[idx]
cpu = torch.device("cpu")
def run(protocol):
    torch.manual_seed(0)
    model = create_model("convnet", data.channels, data.num_classes, data.image_size)
    start = time.process_time()
    train_network(model, images, labels, protocol, torch.Generator().manual_seed(0), cpu, data.name)
    return time.process_time() - start, model
warm, _ = run(get_protocol(name, 2))
seconds, model = run(get_protocol(name, epochs))
print(json.dumps({"seconds": seconds, "warm": warm, "acc": accuracy(model, data.test, cpu)}))
"""
ARMS = ("old", "new", "new-compiled")


def run_arm(arm: str, old: Path, protocol: str, epochs: int) -> dict:
    checkout = old if arm == "old" else NEW
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(checkout),
           "DASM_COMPILE": "on" if arm == "new-compiled" else "off"}
    env.pop("DASM_MALLOC", None)
    return run_child(CHILD, [arm, protocol, str(epochs)], env, checkout, f"{arm} {protocol}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path, help="the old checkout (a worktree of the commit to compare with)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--protocols", default="dc,idc")
    args = ap.parse_args()
    if not (args.old / "bench" / "evaluation.py").is_file():
        raise SystemExit(f"error: {args.old} is not a dasm-bench checkout")
    load = os.getloadavg()[0]
    print(f"old = {args.old}, new = {NEW}; {args.rounds} rounds, {args.epochs} epochs, load average {load:.1f}")
    print("| protocol | arm | CPU s (median) | speed-up old/arm, median (min-max) | warm-up s | test acc |")
    print("|---|---|---|---|---|---|")
    for protocol in args.protocols.split(","):
        res: dict[str, list[dict]] = {a: [] for a in ARMS}
        for r in range(args.rounds):
            for arm in ARMS[r % 3:] + ARMS[:r % 3]:
                res[arm].append(run_arm(arm, args.old, protocol, args.epochs))
        for arm in ARMS:
            secs = [x["seconds"] for x in res[arm]]
            ups = sorted(o["seconds"] / x["seconds"] for o, x in zip(res["old"], res[arm]))
            accs = sorted({round(x["acc"], 2) for x in res[arm]})
            print(f"| {protocol}@{args.epochs}ep | {arm} | {statistics.median(secs):.2f} | "
                  f"{statistics.median(ups):.2f}x ({ups[0]:.2f}-{ups[-1]:.2f}) | "
                  f"{statistics.median(x['warm'] for x in res[arm]):.2f} | {', '.join(map(str, accs))} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
