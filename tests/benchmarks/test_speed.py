"""Speed benchmarks: one per method inner step, evaluation protocol, timm epoch, CLI start-up, results append.

``nox -s bench`` times them (CPU-seconds on one thread, digits, IPC 10, fixed seeds) and prints each median with
its ratio to the committed baseline ``results/perf/baseline.json`` (see ``conftest.py``); rewrite
the baseline with ``nox -s bench -- --update-baseline``. In the default test run
(``--benchmark-disable``) each one runs once as a smoke test, except the CLI start-up ones.
Speed targets live here, as ratios to the baseline, never as limits in timed tests.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench.data.datasets import load_dataset
from bench.methods.registry import DistillRequest, default_config, distill
from bench.protocols import PROTOCOLS
from bench.train.evaluation import train_network
from bench.train.models import create_model


def cpu_seconds() -> float:
    """CPU time of this process plus its finished children: on a shared, loaded machine wall time
    mostly measures the neighbours; one-thread CPU time measures the work."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


CUDA_TIMING = False  # set by the bench_device fixture (conftest) for `--device cuda`


def bench_seconds() -> float:
    """CPU-seconds on CPU; with ``--device cuda`` wall seconds after a synchronise (the GPU's time)."""
    if CUDA_TIMING:
        torch.cuda.synchronize()
        return time.perf_counter()
    return cpu_seconds()


pytestmark = pytest.mark.benchmark(timer=bench_seconds)

IPC = 10
EVAL_EPOCHS = 1
MTT_MODES = ("unrolled", "checkpointed", "tesla")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ipc10(digits):
    """The first IPC real training images of every class: the set the evaluation benchmarks train on."""
    idx = torch.cat([ix[:IPC] for ix in digits.train.indices_by_class])
    return digits.train.get(idx), digits.train.labels[idx]


# ----------------------------------------------------------------------------- matching methods

# One outer iteration of each matcher through its real entry point (``distill``), setup included:
# dc/dsa one class-wise gradient match + one network update, dm one embedding match over all
# classes, idc one outer iteration with one inner step.
ONE_ITERATION = {
    "dc": {"iterations": 1, "outer_loop": 1, "inner_loop": 1},
    "dsa": {"iterations": 1, "outer_loop": 1, "inner_loop": 1},
    "dm": {"iterations": 1},
    "idc": {"iterations": 1, "inner_loop": 1},
}


@pytest.mark.parametrize("method", list(ONE_ITERATION))
def test_matching_iteration(benchmark, digits, method):
    from bench.methods.registry import apply_overrides

    config = apply_overrides(default_config(method, "digits", IPC), ONE_ITERATION[method])

    def run():
        return distill(method, DistillRequest(digits, IPC, seed=0, progress=False), config=config)

    syn = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert len(syn) == IPC * digits.num_classes and torch.isfinite(syn.images).all()


@pytest.fixture(scope="module")
def mtt_case(digits):
    """An expert-like start/target pair and IPC-10 images at digits' MTT settings (syn_steps, batch_syn)."""
    from baselines.mtt import MTTConfig, plan_student_steps
    from baselines.mtt_experts import ParamLayout
    from bench.train.augmentation import DSA, strategy_for

    config = MTTConfig.for_setting("digits", IPC)
    torch.manual_seed(0)
    layout = ParamLayout(create_model("convnet", digits.channels, digits.num_classes, digits.image_size))
    start = layout.flatten()
    target = start + 0.01 * torch.randn(start.shape, generator=torch.Generator().manual_seed(1))
    idx = torch.cat([ix[:IPC] for ix in digits.train.indices_by_class])
    images = digits.train.get(idx).requires_grad_(True)
    plan = plan_student_steps(len(images), config.syn_steps, config.batch_syn,
                              DSA(strategy_for("digits"), siamese=False), torch.Generator().manual_seed(0))
    return layout, start, target, images, digits.train.labels[idx], plan


@pytest.mark.parametrize("mode", MTT_MODES)
def test_mtt_unroll_and_meta_gradient(benchmark, mtt_case, mode):
    from baselines.mtt import GRADIENT_MODES, trajectory_gradients

    assert set(GRADIENT_MODES) == set(MTT_MODES)  # a new mode needs its benchmark
    layout, start, target, images, labels, plan = mtt_case
    lr = torch.tensor(0.01)
    res = benchmark.pedantic(trajectory_gradients, args=(layout.forward, start, target, images, labels, lr, plan,
                                                         None, mode), rounds=5, iterations=1, warmup_rounds=1)
    assert res.grad_images.shape == images.shape and torch.isfinite(res.grad_images).all()


def test_dasm_ranking_pass(benchmark, digits, ipc10):
    """DASM's difficulty ranking: a per-image loss over the whole training split."""
    from dasm.difficulty import difficulty_scores

    torch.manual_seed(0)
    model = create_model("convnet", digits.channels, digits.num_classes, digits.image_size)
    scores = benchmark.pedantic(difficulty_scores, args=(model, digits), rounds=10, iterations=1, warmup_rounds=1)
    assert scores.shape == (len(digits.train),)


# ----------------------------------------------------------------------------- evaluation

@pytest.mark.parametrize("protocol", ["dc", "dc-nodsa", "idc", "mtt"])
def test_evaluation_epoch(benchmark, digits, ipc10, protocol, bench_device):
    """The shortest training run of a fresh ConvNet on the IPC-10 set under each protocol (mtt: at
    lr 0.01, the learned-lr stand-in; its schedule is dc's). ``with_epochs(1)`` is one epoch for
    ``idc`` but two for the dc family, which trains E + 1 epochs as the reference ``evaluate_synset``
    does: compare a protocol with its own baseline, not dc with idc."""
    proto = PROTOCOLS[protocol].with_epochs(EVAL_EPOCHS)
    if proto.lr_from_set:
        proto = dataclasses.replace(proto, lr=0.01)
    _bench_training(benchmark, "convnet", digits, ipc10, proto, rounds=10, device=bench_device)


@pytest.mark.parametrize("protocol", ["dc", "dc-nodsa", "idc", "mtt"])
def test_evaluation_epoch_compiled(benchmark, digits, ipc10, protocol, bench_device):
    """``test_evaluation_epoch`` with the training step compiled (``--compile on``, bench.train.acceleration);
    the compile is paid before timing (every graph of the protocol met in a 4-epoch run) and timed by
    ``test_compile_cost``. The summary prints eager/compiled per protocol."""
    from bench.train.acceleration import Acceleration, use_options

    if benchmark.disabled:
        pytest.skip("compiling costs seconds: timed only by `nox -s bench`; tests/test_acceleration.py checks it")
    proto = PROTOCOLS[protocol].with_epochs(EVAL_EPOCHS)
    if proto.lr_from_set:
        proto = dataclasses.replace(proto, lr=0.01)
    with use_options(Acceleration(compile="on")):
        torch.manual_seed(0)
        train_network(create_model("convnet", digits.channels, digits.num_classes, digits.image_size), *ipc10,
                      proto.with_epochs(4), torch.Generator().manual_seed(0), bench_device, digits.name)
        _bench_training(benchmark, "convnet", digits, ipc10, proto, rounds=10, device=bench_device)


@pytest.mark.parametrize("options", ["bf16", "channels_last", "bf16+channels_last"])
def test_evaluation_epoch_gpu_options(benchmark, digits, ipc10, options, bench_device):
    """The dc epoch under the CUDA-only options (``--amp bf16``, ``--channels-last on``); run with
    ``nox -s bench -- --device cuda``. Compare with ``test_evaluation_epoch[dc]`` of the same run."""
    from bench.train.acceleration import Acceleration, use_options

    if bench_device.type != "cuda":
        pytest.skip("bf16 autocast and channels_last are CUDA options: `nox -s bench -- --device cuda`")
    accel = Acceleration(compile="off", amp="bf16" if "bf16" in options else "off",
                         channels_last="channels_last" in options)
    with use_options(accel):
        _bench_training(benchmark, "convnet", digits, ipc10, PROTOCOLS["dc"].with_epochs(EVAL_EPOCHS), rounds=10,
                        device=bench_device)


@pytest.mark.parametrize("protocol", ["dc", "idc"])
def test_compile_cost(benchmark, digits, ipc10, protocol):
    """What one worker pays to compile the evaluation step (the cost ``--compile auto`` amortises): a
    4-epoch compiled run after ``torch._dynamo.reset()``, with inductor's on-disk cache as this machine
    has it (warm after the first run; a first-ever compile costs more, see results/perf/README.md)."""
    import torch._dynamo

    from bench.train.acceleration import Acceleration, use_options

    if benchmark.disabled:
        pytest.skip("compiling costs seconds: timed only by `nox -s bench`")
    images, labels = ipc10
    proto = PROTOCOLS[protocol].with_epochs(4)

    def setup():
        torch._dynamo.reset()
        torch.manual_seed(0)
        return (create_model("convnet", digits.channels, digits.num_classes, digits.image_size), images, labels,
                proto, torch.Generator().manual_seed(0), torch.device("cpu"), digits.name), {}

    with use_options(Acceleration(compile="on")):
        benchmark.pedantic(train_network, setup=setup, rounds=3, iterations=1, warmup_rounds=1)
    torch._dynamo.reset()


def _bench_training(benchmark, arch: str, digits, ipc10, proto, rounds: int,
                    device: torch.device = torch.device("cpu")) -> None:
    """Time ``train_network`` of a fresh, seeded ``arch`` on the IPC-10 set (model built in setup)."""
    images, labels = ipc10

    def setup():
        torch.manual_seed(0)
        return (create_model(arch, digits.channels, digits.num_classes, digits.image_size), images, labels,
                proto, torch.Generator().manual_seed(0), device, digits.name), {}

    model = benchmark.pedantic(train_network, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_timm_resnet18_epoch(benchmark, digits, ipc10, bench_device):
    """The shortest dc-nodsa run of timm's resnet18 (inputs resized to 32x32) on the IPC-10 set:
    E + 1 = 2 epochs (the dc family's reference schedule)."""
    _bench_training(benchmark, "resnet18", digits, ipc10, PROTOCOLS["dc-nodsa"].with_epochs(1), rounds=5,
                    device=bench_device)


# ----------------------------------------------------------------------------- harness

@pytest.mark.benchmark(timer=time.perf_counter)  # file creation and rename: wall time, not CPU, is its cost
def test_results_append(benchmark, tmp_path):
    """One single-row append to a results table already holding 1,000 rows (wall seconds)."""
    from test_results_append import _row  # this folder is on sys.path (pytest rootdir-relative import)

    from bench.store.results import ResultsTable

    table = ResultsTable(tmp_path)
    table.append([_row(i) for i in range(1000)])
    counter = iter(range(1000, 10**6))
    benchmark.pedantic(lambda: table.append([_row(next(counter))]), rounds=50, iterations=1, warmup_rounds=2)
    assert len(table.done_keys()) >= 1001


CLI = {"help": ["--help"], "list": ["list"], "unknown-method": ["distill", "--method", "no-such-method", "--ipc", "1"]}


@pytest.mark.parametrize("case", ["import-torch", *CLI])
def test_cli_startup(benchmark, case):
    """Whole-process start-up of `dasm-bench` commands, and `python -c "import torch"` to compare with
    (the start-up target: `list` and bad-input errors at most 1.3x an import of torch)."""
    if benchmark.disabled:
        pytest.skip("process start-up is timed only by `nox -s bench`; tests/test_startup.py checks the imports")
    argv = [sys.executable, "-c", "import torch"] if case == "import-torch" else \
        [sys.executable, "-m", "bench.cli.main", *CLI[case]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[2]  # `python -m` imports this checkout's bench from the cwd
    subprocess.run([sys.executable, "-m", "bench.cli.main", "list"], env=env, capture_output=True, cwd=root)  # caches
    proc = benchmark.pedantic(subprocess.run, args=(argv,), kwargs={"env": env, "capture_output": True, "cwd": root},
                              rounds=5, iterations=1, warmup_rounds=1)
    assert proc.returncode == (2 if case == "unknown-method" else 0), proc.stderr
