"""Time our inner steps against the reference implementations' (re-stated) steps on the same work.

For each method (dc, dsa, dm, idc, mtt; see ``reference_steps/cases.py`` for what one step is),
both sides run alternately, torch on one thread, timed in CPU seconds (``time.process_time``): on a
shared, loaded machine wall time mostly measures the neighbours, and alternating (ours first in
even rounds, the reference first in odd ones) spreads any drift over both sides. One warm-up pair
per method is not timed.

``--allocator as-shipped`` (default): each side runs in its own warm process, as it runs for its
users: ours with the C allocator tuning our CLI and workers apply (``bench/train/allocator.py``), the
reference with glibc's defaults (its scripts change nothing). ``--allocator same``: both sides in
this one process under glibc's defaults, which isolates what our code does differently.

Reported: median seconds per side, the median of the per-round ratios ours/reference with their
interquartile range, and both sides' median matching loss (same magnitude = same kind of work; with
augmentation on the two cannot share random draws, see ``test_reference_steps.py`` for the exact
equal-work checks).

Run from the checkout root::

    python tests/benchmarks/compare_references.py                     # all methods, ROUNDS each
    python tests/benchmarks/compare_references.py --methods dc dm --rounds 3
    python tests/benchmarks/compare_references.py --profile dc        # top ops of our step
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
for p in (str(HERE), str(HERE.parents[1])):  # reference_steps, and this checkout's bench/baselines
    if p not in sys.path:
        sys.path.insert(0, p)

GOAL = 1.25  # issue 17: each of our methods at least 1.25x faster than its reference on the same work
# default rounds per method: about a CPU-minute per side for the long steps, more rounds for the short ones
ROUNDS = {"dc": 9, "dsa": 9, "idc": 9, "dm": 31, "mtt": 31}


@dataclass
class Row:
    method: str
    step: str
    shapes: str
    ours_s: float
    reference_s: float
    ratio: float           # median over rounds of ours/reference
    q1: float
    q3: float
    rounds: int
    ours_loss: float | None
    reference_loss: float | None

    @property
    def speedup(self) -> float:
        return 1.0 / self.ratio


def _loss(out) -> float | None:
    """The step's matching loss: a float from the reference steps and MTT, metadata from our distillers."""
    if isinstance(out, float):
        return out
    meta = getattr(out, "metadata", {})
    if meta.get("matching_loss"):
        return float(meta["matching_loss"][0])
    return meta.get("dm_loss_first")


def _timed(fn, seed: int) -> tuple[float, object]:
    gc.collect()
    t0 = time.process_time()
    out = fn(seed)
    return time.process_time() - t0, out


def _serve(method: str, side: str, tune: bool, conn) -> None:
    """A side's own process: build the case once, then time one step per seed received (None: stop)."""
    if tune:
        from bench.train.allocator import tune_allocator

        assert tune_allocator() == "tuned", "the allocator tuning did not apply"
    from reference_steps.cases import build_cases

    from bench.data.datasets import load_dataset

    torch.set_num_threads(1)
    fn = getattr(build_cases(load_dataset("digits"), (method,))[method], side)
    fn(10_000)  # warm-up
    conn.send("ready")
    while (seed := conn.recv()) is not None:
        seconds, out = _timed(fn, seed)
        conn.send((seconds, _loss(out)))


def _local(fn):
    def step(seed: int) -> tuple[float, float | None]:
        seconds, out = _timed(fn, seed)
        return seconds, _loss(out)

    return step


class _Remote:
    """One side's step, run in a spawned process (its allocator set as its users run it)."""

    def __init__(self, method: str, side: str, tune: bool) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(method, side, tune, child), daemon=True)
        self.proc.start()
        if self.conn.recv() != "ready":
            raise RuntimeError(f"{method} {side}: the timing process did not start")

    def __call__(self, seed: int) -> tuple[float, float | None]:
        self.conn.send(seed)
        return self.conn.recv()

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=60)


def time_case(case, rounds: int = 9, allocator: str = "as-shipped") -> Row:
    """Alternate ``case.ours`` and ``case.reference`` for ``rounds`` rounds (after one warm-up pair):
    ``as-shipped`` in two processes (ours with our allocator tuning, the reference without), ``same`` in
    this process."""
    torch.set_num_threads(1)
    if allocator == "as-shipped":
        remotes = {"ours": _Remote(case.method, "ours", True), "ref": _Remote(case.method, "reference", False)}
        steps = dict(remotes)
    else:
        remotes = {}
        case.ours(10_000)
        case.reference(10_000)
        steps = {"ours": _local(case.ours), "ref": _local(case.reference)}
    ours, ref, ours_loss, ref_loss = [], [], [], []
    try:
        for r in range(rounds):
            for name in (("ours", "ref") if r % 2 == 0 else ("ref", "ours")):
                seconds, loss = steps[name](r)
                (ours if name == "ours" else ref).append(seconds)
                (ours_loss if name == "ours" else ref_loss).append(loss)
    finally:
        for remote in remotes.values():
            remote.close()
    ratios = sorted(o / f for o, f in zip(ours, ref))
    q = statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else [ratios[0]] * 3

    def med(xs):
        xs = [x for x in xs if x is not None]
        return statistics.median(xs) if xs else None

    return Row(case.method, case.step, case.shapes, statistics.median(ours), statistics.median(ref),
               statistics.median(ratios), q[0], q[2], rounds, med(ours_loss), med(ref_loss))


def format_rows(rows: list[Row]) -> list[str]:
    """The markdown table of results/perf/references.md."""
    lines = [("| method | step | shapes | ours s | reference s | ratio ours/ref | n rounds | spread (IQR of ratios) "
              f"| speed-up | goal >= {GOAL}x | loss ours / ref |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        loss = "-" if r.ours_loss is None or r.reference_loss is None else f"{r.ours_loss:.4g} / {r.reference_loss:.4g}"
        lines.append(f"| {r.method} | {r.step} | {r.shapes} | {r.ours_s:.3f} | {r.reference_s:.3f} | {r.ratio:.2f} | "
                     f"{r.rounds} | {r.q1:.2f}-{r.q3:.2f} | {r.speedup:.2f}x | "
                     f"{'met' if r.speedup >= GOAL else 'not met'} | {loss} |")
    return lines


def profile(case, side: str = "ours", top: int = 12) -> str:
    """Top ops by self time of one step of ``side`` (after a warm-up call), and the share of the step
    spent inside aten ops. The profiler's op times are wall-clock, so the share is taken against the
    step's wall time (on a loaded machine both stretch alike); profiling adds a little per op."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(1)
    fn = case.ours if side == "ours" else case.reference
    fn(10_000)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0, w0 = time.process_time(), time.perf_counter()
        fn(0)
        seconds, wall = time.process_time() - t0, time.perf_counter() - w0
    averages = prof.key_averages()
    aten = [e for e in averages if e.key.startswith("aten::")]
    calls = sum(e.count for e in aten)
    inside = sum(e.self_cpu_time_total for e in aten) / 1e6
    head = (f"{case.method} ({side}): {seconds:.3f} CPU-s, {wall:.3f} wall-s under the profiler; {calls} aten calls "
            f"holding {100 * inside / wall:.0f}% of the wall time "
            f"(the rest: Python, autograd and dispatch outside aten)")
    return head + "\n" + averages.table(sort_by="self_cpu_time_total", row_limit=top)


def machine() -> str:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu or platform.processor()}, {os.cpu_count()} cores, load average {load:.1f}; python "
            f"{platform.python_version()}, torch {torch.__version__}, 1 thread")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=["dc", "dsa", "dm", "idc", "mtt"],
                        choices=["dc", "dsa", "dm", "idc", "mtt"])
    parser.add_argument("--rounds", type=int, default=None, help="rounds per method (default: ROUNDS)")
    parser.add_argument("--allocator", choices=["as-shipped", "same"], default="as-shipped",
                        help="as-shipped: each side in its own process, ours with our allocator tuning (default); "
                             "same: both in this process under glibc's defaults")
    parser.add_argument("--profile", nargs="*", metavar="METHOD", default=None,
                        help="print the top ops of our step (and the reference's) for these methods instead")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be >= 1")

    from reference_steps.cases import build_cases

    from bench.data.datasets import load_dataset

    data = load_dataset("digits")
    if args.profile is not None:
        for case in build_cases(data, tuple(args.profile or args.methods)).values():
            print(profile(case, "ours"))
            print(profile(case, "reference"))
        return 0
    print(f"machine: {machine()}; allocator: {args.allocator}", flush=True)
    rows = []
    for name in args.methods:
        rows.append(time_case(build_cases(data, (name,))[name], args.rounds or ROUNDS[name], args.allocator))
        print(f"{name}: ours {rows[-1].ours_s:.3f} s, reference {rows[-1].reference_s:.3f} s, "
              f"ratio {rows[-1].ratio:.2f} ({rows[-1].q1:.2f}-{rows[-1].q3:.2f})", flush=True)
    print("\n".join(format_rows(rows)))
    print(f"machine after: {machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
