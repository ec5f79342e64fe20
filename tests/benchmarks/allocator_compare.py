"""glibc's allocator defaults against the tuning of ``bench/train/allocator.py``: CPU seconds and page faults.

    python tests/benchmarks/allocator_compare.py [--rounds 3] [--epochs 50] [--protocol dc]

Each round runs two fresh processes (order swapped every round), one with ``DASM_MALLOC=default`` and
one tuned, torch on one thread. Each trains a 2-epoch warm-up run and then one timed run of a fresh
seeded ConvNet on the IPC-10 digits set, and reports the timed run's CPU seconds
(``time.process_time``) and minor page faults (``getrusage``). Printed: medians per arm and the
accuracy-free check that both arms trained the same weights (a checksum of the final parameters).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from timed_child import run_child  # this directory: the scripts run as files

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
from bench.train.allocator import tune_allocator
state = tune_allocator()
from bench.data.datasets import load_dataset
from bench.protocols import get_protocol
from bench.train.evaluation import train_network
from bench.train.models import create_model
data = load_dataset("digits")
idx = torch.cat([ix[:10] for ix in data.train.indices_by_class])
images, labels = data.train.get(idx), data.train.labels[idx]
def run(epochs):
    torch.manual_seed(0)
    model = create_model("convnet", data.channels, data.num_classes, data.image_size)
    train_network(model, images, labels, get_protocol(sys.argv[1], epochs), torch.Generator().manual_seed(0),
                  torch.device("cpu"), data.name)
    return model
run(2)
before, start = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
model = run(int(sys.argv[2]))
seconds, after = time.process_time() - start, resource.getrusage(resource.RUSAGE_SELF)
checksum = float(sum(p.double().sum() for p in model.parameters()))
print(json.dumps({"state": state, "seconds": seconds, "faults": after.ru_minflt - before.ru_minflt,
                  "checksum": checksum}))
"""


def run(mode: str, protocol: str, epochs: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DASM_MALLOC": mode, "PYTHONPATH": str(ROOT)}
    return run_child(CHILD, [protocol, str(epochs)], env, ROOT, f"DASM_MALLOC={mode}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--protocol", default="dc")
    args = ap.parse_args()
    res: dict[str, list[dict]] = {"default": [], "tuned": []}
    for r in range(args.rounds):
        for mode in (("default", "tuned") if r % 2 == 0 else ("tuned", "default")):
            res[mode].append(run(mode, args.protocol, args.epochs))
    print(f"{args.protocol}@{args.epochs}ep, IPC-10 digits, {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| allocator | CPU s (median) | minor page faults (median) | speed-up default/tuned | same weights |")
    print("|---|---|---|---|---|")
    same = len({x["checksum"] for xs in res.values() for x in xs}) == 1
    ups = sorted(d["seconds"] / t["seconds"] for d, t in zip(res["default"], res["tuned"]))
    for mode, xs in res.items():
        up = f"{statistics.median(ups):.2f}x ({ups[0]:.2f}-{ups[-1]:.2f})" if mode == "tuned" else "1.00x"
        print(f"| {mode} ({xs[0]['state']}) | {statistics.median(x['seconds'] for x in xs):.2f} | "
              f"{statistics.median(x['faults'] for x in xs):,.0f} | {up} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
