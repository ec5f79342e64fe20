"""Eager vs compiled evaluation training, side by side in ONE process, alternating, on one torch thread.

    python tests/benchmarks/compile_compare.py [--rounds 3] [--epochs 200] [--protocols dc,idc]

Each round trains one fresh, seeded ConvNet on the IPC-10 digits set (the first 10 training images of
each class) under each protocol twice, eager then compiled (``bench.train.acceleration``, ``compile=on``),
from the same seed, and records CPU-seconds (``time.process_time``), with the C allocator tuned as the
CLI runs (``bench/train/allocator.py``). The compile itself happens before
the first round and is printed on its own line (the cost ``auto`` must amortise). Printed: per
protocol the eager and compiled medians, the ratio eager/compiled per round (median, min-max), and the
test accuracies of both (equal up to float rounding of the compiled kernels).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--protocols", default="dc,idc")
    ap.add_argument("--arch", default="convnet")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from bench.train.allocator import tune_allocator

    tune_allocator()  # as the CLI and its workers run (bench/train/allocator.py)
    from bench.data.datasets import load_dataset
    from bench.protocols import get_protocol
    from bench.train.acceleration import Acceleration, use_options
    from bench.train.evaluation import accuracy, train_network
    from bench.train.models import create_model

    data = load_dataset("digits")
    idx = torch.cat([ix[:10] for ix in data.train.indices_by_class])
    images, labels = data.train.get(idx), data.train.labels[idx]
    cpu = torch.device("cpu")

    def run(protocol, mode: str) -> tuple[float, float]:
        with use_options(Acceleration(compile=mode)):
            torch.manual_seed(0)
            model = create_model(args.arch, data.channels, data.num_classes, data.image_size)
            start = time.process_time()
            train_network(model, images, labels, protocol, torch.Generator().manual_seed(0), cpu, data.name)
            seconds = time.process_time() - start
        return seconds, accuracy(model, data.test, cpu)

    protocols = [get_protocol(p, args.epochs) for p in args.protocols.split(",")]
    for proto in protocols:  # the compiles (and dynamo/inductor import), timed on their own: 4 epochs meet every
        # graph (idc: batches of 64 and the remainder, with and without a CutMix box)
        start = time.process_time()
        run(get_protocol(proto.name.split("@")[0], 4), "on")
        print(f"compile {proto.name.split('@')[0]}: {time.process_time() - start:.2f} CPU-s (first compiled run "
              f"of 4 epochs, compile included)", flush=True)
    times: dict[str, dict[str, list[float]]] = {p.name: {"off": [], "on": []} for p in protocols}
    accs: dict[str, dict[str, list[float]]] = {p.name: {"off": [], "on": []} for p in protocols}
    for r in range(args.rounds):
        for proto in protocols:
            for mode in ("off", "on"):
                s, a = run(proto, mode)
                times[proto.name][mode].append(s)
                accs[proto.name][mode].append(a)
                print(f"round {r} {proto.name} compile={mode}: {s:.2f} CPU-s, acc {a:.2f}", flush=True)
    print("\n| protocol | eager CPU-s (median) | compiled CPU-s (median) | eager/compiled per round: median (min-max) "
          "| test acc eager / compiled |")
    print("|---|---|---|---|---|")
    for name in times:
        e, c = times[name]["off"], times[name]["on"]
        ratios = [a / b for a, b in zip(e, c)]
        print(f"| {name} | {statistics.median(e):.2f} | {statistics.median(c):.2f} | {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f}) | {statistics.median(accs[name]['off']):.2f} / "
              f"{statistics.median(accs[name]['on']):.2f} |")

if __name__ == "__main__":
    main()
