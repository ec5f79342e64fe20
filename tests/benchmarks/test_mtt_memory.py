"""Memory of MTT's gradient modes at syn_steps 10 / 30 / 50 on digits (not part of the CI gate).

Run with ``pytest tests/benchmarks/test_mtt_memory.py -m slow --benchmark-enable``; it writes a
side-by-side table to ``results/mtt/memory.md``.

Measure: on GPU, ``torch.cuda.max_memory_allocated`` above the baseline. On CPU (where allocator
statistics are not exposed) the peak bytes of LIVE autograd saved tensors, tracked with
``torch.autograd.graph.saved_tensors_hooks`` (a tensor counts from when a graph saves it until the
graph releases it), plus the flat parameter vectors a mode keeps outside autograd. Both are
deterministic for a given setting. Saved tensors that share storage are counted once per save.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from baselines.mtt import GRADIENT_MODES, plan_student_steps, trajectory_gradients
from baselines.mtt_experts import ParamLayout
from bench.data.datasets import load_dataset
from bench.train.augmentation import DSA, strategy_for
from bench.train.models import create_model

STEPS = (10, 30, 50)
RESULTS: dict[tuple[str, int], dict] = {}


class SavedTensorMeter:
    """Peak bytes of saved tensors alive at once inside the context."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0

    def pack(self, t: torch.Tensor) -> "_Saved":
        return _Saved(t, self)

    @staticmethod
    def unpack(saved: "_Saved") -> torch.Tensor:
        return saved.tensor

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Saved:
    __slots__ = ("tensor", "bytes", "meter")

    def __init__(self, tensor: torch.Tensor, meter: SavedTensorMeter) -> None:
        self.tensor, self.meter = tensor, meter
        self.bytes = tensor.numel() * tensor.element_size()
        meter.live += self.bytes
        meter.peak = max(meter.peak, meter.live)

    def __del__(self) -> None:
        self.meter.live -= self.bytes


def _case(device: torch.device):
    data = load_dataset("digits")
    torch.manual_seed(0)
    layout = ParamLayout(create_model("convnet", data.channels, data.num_classes, data.image_size).to(device))
    start = layout.flatten().to(device)
    target = start + 0.01 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1)).to(device)
    idx = torch.cat([ix[:1] for ix in data.train.indices_by_class])   # IPC 1: 10 images
    images = data.train.get(idx).to(device)
    labels = data.train.labels[idx].to(device)
    return layout, start, target, images, labels


def _measure(mode: str, steps: int) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    layout, start, target, images, labels = _case(device)
    plan = plan_student_steps(len(images), steps, None, DSA(strategy_for("digits"), siamese=False),
                              torch.Generator().manual_seed(0))
    lr = torch.tensor(0.01, device=device)
    kept_vectors = 0 if mode == "unrolled" else (steps + 1) * layout.size * start.element_size()
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        trajectory_gradients(layout.forward, start, target, images, labels, lr, plan, None, mode)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        return {"peak_bytes": peak, "kept_vectors": kept_vectors, "measure": "cuda max_memory_allocated",
                "seconds": time.perf_counter() - t0}
    with SavedTensorMeter() as meter:
        trajectory_gradients(layout.forward, start, target, images, labels, lr, plan, None, mode)
    return {"peak_bytes": meter.peak + kept_vectors, "graph_bytes": meter.peak, "kept_vectors": kept_vectors,
            "measure": "peak live saved-tensor bytes + kept parameter vectors",
            "seconds": time.perf_counter() - t0}


@pytest.mark.slow
@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("mode", GRADIENT_MODES)
def test_mtt_gradient_memory(benchmark, mode: str, steps: int):
    result = benchmark.pedantic(_measure, args=(mode, steps), rounds=1, iterations=1)
    RESULTS[(mode, steps)] = result
    assert result["peak_bytes"] > 0
    if len(RESULTS) == len(STEPS) * len(GRADIENT_MODES):
        _write_table()
        # the point of the bounded modes: the unrolled graph grows with syn_steps, theirs does not
        # (they only keep one flat parameter vector per step, small next to a step's activations)
        first, last = STEPS[0], STEPS[-1]
        for m in ("checkpointed", "tesla"):
            assert RESULTS[(m, last)]["peak_bytes"] < RESULTS[("unrolled", last)]["peak_bytes"] / 2
        if "graph_bytes" in result:
            assert RESULTS[("unrolled", last)]["graph_bytes"] > 4 * RESULTS[("unrolled", first)]["graph_bytes"]
            for m in ("checkpointed", "tesla"):
                assert RESULTS[(m, last)]["graph_bytes"] == RESULTS[(m, first)]["graph_bytes"]


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _write_table() -> None:
    any_result = next(iter(RESULTS.values()))
    lines = [
        "# MTT gradient memory (digits, IPC 1 = 10 images, ConvNet width 128, DSA on)",
        "",
        f"Measure: {any_result['measure']}. Written by `tests/benchmarks/test_mtt_memory.py`.",
        "",
        "| syn_steps | " + " | ".join(f"{m} MiB" for m in GRADIENT_MODES) + " | "
        + " | ".join(f"{m} s" for m in GRADIENT_MODES) + " |",
        "|---|" + "---|" * (2 * len(GRADIENT_MODES)),
    ]
    for steps in STEPS:
        mem = " | ".join(_mib(RESULTS[(m, steps)]["peak_bytes"]) for m in GRADIENT_MODES)
        sec = " | ".join(f"{RESULTS[(m, steps)]['seconds']:.2f}" for m in GRADIENT_MODES)
        lines.append(f"| {steps} | {mem} | {sec} |")
    if "graph_bytes" in any_result:
        lines += ["", "Of which autograd graph (MiB) / kept flat parameter vectors (MiB):", ""]
        for steps in STEPS:
            parts = [f"{m}: {_mib(RESULTS[(m, steps)]['graph_bytes'])} / {_mib(RESULTS[(m, steps)]['kept_vectors'])}"
                     for m in GRADIENT_MODES]
            lines.append(f"- syn_steps {steps}: " + "; ".join(parts))
    lines += ["", "Seconds are one matching step's wall time on a shared machine (indicative only).", ""]
    out = Path("results/mtt/memory.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
