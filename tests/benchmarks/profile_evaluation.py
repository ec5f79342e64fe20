"""Where a small-set evaluation epoch spends its CPU time: torch.profiler over a run of epochs,
every operator's self CPU time kept raw, repeated so the shares come with a spread.

Small sets (IPC 1-10) train one small batch per epoch, so per-step work that is not convolution
(augmentation, normalisation, pooling, the optimiser step, Python) weighs more than at IPC 50 (the
one test pass at the end scores 10 test images only, so it does not count). The
raw CSV has one row per (run, operator); ``shares`` groups operators into convolution (forward
and backward) and the rest, per run, so the README can state the convolution's share with its
spread (tests/test_perf_numbers.py recomputes it).

    python tests/benchmarks/profile_evaluation.py --dataset digits --ipc 1 --runs 5 --epochs 100 \
        --out results/perf
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward")  # the FLOPs the roofline counts


def raw_name(dataset: str, ipc: int) -> str:
    return f"profile_evaluation_{dataset}_ipc{ipc}.csv"


def shares(raw) -> list[float]:
    """Per run: the convolution operators' share (%) of all operators' self CPU time."""
    out = []
    for _, g in raw.groupby("run"):
        total = g["self_cpu_us"].sum()
        out.append(100.0 * g[g["op"].isin(CONV_OPS)]["self_cpu_us"].sum() / total)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-root", default=None)
    p.add_argument("--ipc", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--protocol", default="dc")
    p.add_argument("--out", default="results/perf")
    a = p.parse_args(argv)
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile

    from bench.data.datasets import load_dataset
    from bench.files import write_atomically
    from bench.perf.cost_model import _subset, machine_note
    from bench.protocols import get_protocol
    from bench.train.acceleration import Acceleration, use_options
    from bench.train.allocator import tune_allocator
    from bench.train.evaluation import evaluate_training_set
    from bench.version import code_version

    version, allocator = code_version(), tune_allocator()
    torch.set_num_threads(1)
    data = load_dataset(a.dataset, a.data_root)
    small = _subset(data, a.ipc * data.num_classes).train
    protocol = get_protocol(a.protocol)
    # the test pass is not the epoch being profiled: score on 10 test images (over the 10,000 of
    # CIFAR-10 it would outweigh 50 small-set epochs and read as convolution time)
    target = data.test.subset(torch.arange(10))

    def run(epochs: int) -> None:
        with use_options(Acceleration(compile="off")):
            evaluate_training_set(small.images, small.labels, data, "convnet", protocol.with_epochs(epochs), 1, 0,
                                  "cpu", target=target)

    run(2)  # warm-up
    rows = []
    for r in range(a.runs):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run(a.epochs)
        for e in prof.key_averages():
            rows.append({"run": r, "op": e.key, "calls": e.count, "self_cpu_us": e.self_cpu_time_total})
        print(f"run {r}: convolution share {shares(pd.DataFrame(rows)[lambda d: d['run'] == r])[0]:.1f}%", flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    name = raw_name(a.dataset, a.ipc)
    write_atomically(out / name, pd.DataFrame(rows).to_csv(index=False, lineterminator="\n"))
    meta = {"code_version": version, "allocator": allocator, "torch_threads": 1, "torch": torch.__version__,
            "machine": machine_note(), "dataset": a.dataset, "ipc": a.ipc, "epochs": a.epochs,
            "protocol": a.protocol, "runs": a.runs}
    write_atomically(out / name.replace(".csv", ".json"), json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
