"""Runtime speed options of evaluation training: ``torch.compile``, bf16 autocast, channels_last.

These are RUNTIME options, never part of a protocol or a config: cell keys, evaluation keys and
config hashes do not see them (a result computed compiled or eager is the same cell). They travel
to worker processes (local pool, submitit, Slurm) as environment variables, so a job sees exactly
what the command that planned it was given:

- ``DASM_COMPILE`` = ``auto`` (default) | ``on`` | ``off``: compile the training step (forward +
  loss; its backward through AOTAutograd) of an evaluation model. ``auto`` compiles on CPU for a
  ConvNet-family model whose run trains on at least :data:`AUTO_MIN_IMAGES` images, where
  compiling measured faster including its cost (issue 17; those runs' raw times were not kept, so
  results/perf/README.md no longer quotes them); it stays eager for
  short runs (the test suite), other architectures and CUDA (not measured here). ``off`` runs the
  eager code path unchanged.
- ``DASM_AMP`` = ``off`` (default) | ``bf16``: bf16 autocast of the training forward, CUDA only.
- ``DASM_CHANNELS_LAST`` = ``off`` (default) | ``on``: channels_last model and batches, CUDA only.

bf16 and channels_last are GPU options: on CPU they measured slower or unchanged (channels_last
0.69-1.01x, issue 17) and bf16 changes the numbers, so a paper-scale spec that asks for them
(``[runtime]`` in ``bench/specs/*cifar*.toml``) gets them only when it runs on CUDA and the same
spec runs unchanged on CPU; asking for them explicitly on the command line for a CPU run is a
one-line error (:func:`check_for_device`), since it would silently do nothing.

Example::

    with use_options(Acceleration(compile="on")):
        train_network(model, images, labels, protocol, generator, device)   # compiled step
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.errors import BenchError

COMPILE_MODES = ("auto", "on", "off")
AMP_MODES = ("off", "bf16")
ENV = {"compile": "DASM_COMPILE", "amp": "DASM_AMP", "channels_last": "DASM_CHANNELS_LAST"}
# auto compiles a training run that sees at least this many images (epochs x set size). After the
# allocator tuning and the faster pooling made the eager step ~1.5x faster (bench/train/allocator.py,
# bench/models.AvgPool2x2), compiling saves 7.5 (dc) to 15 (idc) us per image on the digits ConvNet
# (CPU, one thread, quiet machine; was 17-32 us before) and costs a worker 2.4 CPU-s (dc) + 0.7 (idc's
# extra graphs) with inductor's on-disk cache warm: break-even 210k (idc) to 330k (dc) images. The
# run alone must pay for it, so each cell's numbers never depend on what its worker ran before.
# (Issue 17's ad-hoc measurements; their raw times were not committed, so no README quotes them.)
AUTO_MIN_IMAGES = 400_000


@dataclass(frozen=True)
class Acceleration:
    """The runtime options; ``Acceleration.from_env()`` is what this process was given."""

    compile: str = "auto"
    amp: str = "off"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise BenchError(f"compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.amp not in AMP_MODES:
            raise BenchError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not isinstance(self.channels_last, bool):
            raise BenchError(f"channels_last must be true or false, got {self.channels_last!r}")

    @staticmethod
    def from_env() -> "Acceleration":
        """The options in the environment (``DASM_COMPILE``, ``DASM_AMP``, ``DASM_CHANNELS_LAST``)."""
        cl = os.environ.get(ENV["channels_last"], "off").strip().lower()
        if cl not in ("on", "off", "1", "0", "true", "false"):
            raise BenchError(f"{ENV['channels_last']} must be on or off, got {cl!r}")
        return Acceleration(compile=os.environ.get(ENV["compile"], "auto").strip().lower() or "auto",
                            amp=os.environ.get(ENV["amp"], "off").strip().lower() or "off",
                            channels_last=cl in ("on", "1", "true"))

    def environ(self) -> dict[str, str]:
        return {ENV["compile"]: self.compile, ENV["amp"]: self.amp,
                ENV["channels_last"]: "on" if self.channels_last else "off"}


@contextlib.contextmanager
def use_options(options: Acceleration) -> Iterator[Acceleration]:
    """Run a block (and the workers it starts) under ``options``; the environment is restored after."""
    before = {k: os.environ.get(k) for k in ENV.values()}
    os.environ.update(options.environ())
    try:
        yield options
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def parse_runtime(table: Any, where: str) -> dict[str, Any]:
    """A spec's ``[runtime]`` table: ``amp = "bf16"``, ``channels_last = true`` (CUDA runs only) and
    ``compile = "auto" | "on" | "off"``. Checked here; applied by :func:`for_spec_run`."""
    if not isinstance(table, dict):
        raise BenchError(f"{where}: [runtime] must be a table")
    allowed = {"compile", "amp", "channels_last"}
    for key in table:
        if key not in allowed:
            raise BenchError(f"{where}: unknown [runtime] key {key!r}; known: {', '.join(sorted(allowed))}")
    try:
        Acceleration(**table)
    except BenchError as exc:
        raise BenchError(f"{where}: [runtime] {exc}") from None
    return dict(table)


def for_spec_run(runtime: dict[str, Any], device: str | torch.device) -> Acceleration:
    """The options of a spec run: the spec's ``[runtime]`` preferences, overridden by options set in the
    environment (the command line's ``--compile/--amp/--channels-last``). The spec's amp and
    channels_last apply on CUDA only: the same spec runs unchanged (and without them) on CPU."""
    env = Acceleration.from_env()
    on_cuda = _is_cuda(device)
    merged = {k: v for k, v in runtime.items() if k == "compile" or on_cuda}
    merged.update({k: getattr(env, k) for k, name in ENV.items() if name in os.environ})
    options = Acceleration(**merged)
    check_for_device(options, device)
    return options


def _is_cuda(device: str | torch.device) -> bool:
    if str(device) == "auto":
        return torch.cuda.is_available()
    return str(device).startswith("cuda")


def check_for_device(options: Acceleration, device: str | torch.device) -> None:
    """bf16 autocast and channels_last are CUDA options: asked for on another device, a one-line error."""
    if _is_cuda(device):
        return
    asked = [name for name, on in (("--amp bf16", options.amp != "off"), ("--channels-last on", options.channels_last))
             if on]
    if asked:
        verb = "applies" if len(asked) == 1 else "apply"
        raise BenchError(f"{' and '.join(asked)} {verb} to CUDA runs only (device {device}); leave it out on CPU")


# ----------------------------------------------------------------------------- the training step

def _loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def _cutmix_loss(model: nn.Module, x: Tensor, y_a: Tensor, y_b: Tensor, lam: Tensor) -> Tensor:
    out = model(x)
    return lam * F.cross_entropy(out, y_a) + (1 - lam) * F.cross_entropy(out, y_b)


# One compiled function per loss for the whole process: dynamo guards on the model's structure, not on
# its identity (inbuilt nn.Modules are inlined), so every fresh model of one architecture and batch
# shape reuses the compiled graph; the compile cost is paid once per worker, not once per cell.
_COMPILED: dict[str, Callable[..., Tensor]] = {}


def _compiled(name: str) -> Callable[..., Tensor]:
    if name not in _COMPILED:
        import torch._inductor.config as inductor_config

        # compile in this process: workers already get one thread each, and a pool of compile
        # subprocesses would take CPU from the neighbouring workers (and hide from CPU-time measures)
        inductor_config.compile_threads = 1
        fn = {"plain": _loss, "cutmix": _cutmix_loss}[name]
        _COMPILED[name] = torch.compile(fn, dynamic=False)
    return _COMPILED[name]


def is_convnet_family(model: nn.Module) -> bool:
    from bench.train.models import ConvNet

    return isinstance(model, ConvNet)


def should_compile(options: Acceleration, model: nn.Module, device: torch.device, images: int) -> bool:
    """``on``/``off`` as given; ``auto``: a ConvNet on CPU whose run trains on at least AUTO_MIN_IMAGES
    images (epochs x set size). Decided per run, never from what the process compiled before."""
    if options.compile != "auto":
        return options.compile == "on"
    return device.type == "cpu" and is_convnet_family(model) and images >= AUTO_MIN_IMAGES


@dataclass
class TrainingStep:
    """The loss computation of one training batch, as this run's options make it.

    ``loss(x, y)`` / ``cutmix_loss(x, y_a, y_b, lam)`` return the scalar loss to call ``backward`` on;
    ``batch(x)`` puts a batch in the memory format the model was set to."""

    model: nn.Module
    device: torch.device
    compiled: bool = False
    amp: bool = False
    channels_last: bool = False

    def batch(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        with self._autocast():
            fn = _compiled("plain") if self.compiled else _loss
            return fn(self.model, self.batch(x), y).float()

    def cutmix_loss(self, x: Tensor, y_a: Tensor, y_b: Tensor, lam: float) -> Tensor:
        with self._autocast():
            if self.compiled and y_a is y_b:
                # no box pasted (cutmix's (x, y, y, 1.0)): 1 * CE + 0 * CE is CE exactly, loss and gradient;
                # one graph less (dynamo would compile another for the aliased labels)
                return _compiled("plain")(self.model, self.batch(x), y_a).float()
            if self.compiled:  # lam as a tensor: a Python float would be a constant of the graph
                lam_t = torch.tensor(lam, dtype=torch.float32, device=x.device)
                return _compiled("cutmix")(self.model, self.batch(x), y_a, y_b, lam_t).float()
            return _cutmix_loss(self.model, self.batch(x), y_a, y_b, lam).float()


def training_step(model: nn.Module, device: torch.device, images: int,
                  options: Acceleration | None = None) -> TrainingStep | None:
    """The accelerated step for a run that trains on ``images`` images in all (epochs x set size), or
    None: nothing to change (then the caller's eager code runs exactly as without this module)."""
    options = options or Acceleration.from_env()
    check_for_device(options, device)
    compiled = should_compile(options, model, device, images)
    amp = options.amp == "bf16"
    if not (compiled or amp or options.channels_last):
        return None
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    return TrainingStep(model, device, compiled=compiled, amp=amp, channels_last=options.channels_last)

