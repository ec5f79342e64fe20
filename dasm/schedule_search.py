"""DASM's search space for ``dasm-bench sweep``: the segment schedule and the base matcher's image
learning rate, and the Optuna objective that distills with them. The harness's study machinery
(:mod:`bench.run.sweep`: storage, pruning, resume, export) reaches this module only through the
``search`` hook registered with the ``dasm`` method (:meth:`bench.methods.registry.MethodSpec.hook`).

One trial samples a schedule and a learning rate, distills with DASM
(:func:`dasm.sequential_matching.run_sequential`), and scores the result on the VALIDATION split
(``evaluate_synthetic(..., split="val")``); the test split is never looked at while tuning.

The sampled space (:func:`sample_schedule`, :func:`bench.run.sweep.sample_learning_rate`):
- ``num_segments`` K in ``1 .. min(max_segments, IPC)``;
- sizes: K raw shares ``share_k`` ~ U(0, 1) mapped to ``-log(1 - u)`` (Exp(1) draws, so the
  normalised proportions are Dirichlet(1, ..., 1): uniform on the simplex); every segment gets 1
  image per class and the remaining IPC - K are split by largest-remainder rounding, so sizes are
  >= 1 and sum to IPC exactly;
- windows: segment 1 keeps [0, 1] (before it no synthetic model exists to rank the real data; a
  narrower window would switch DASM to ranking by a model trained on real data, another method)
  unless ``sample_first_window``; segment k >= 2 samples ``segment{k}_lo`` in [0, max_lo] and keeps
  ``hi = 1`` (the hard tail stays in every window, DASM's design) unless ``sample_hi``, which samples
  the kept share ``segment{k}_keep`` in [min_keep, 1] and sets ``hi = lo + keep * (1 - lo)``.
  Windows are not forced to grow (easy -> hard) so the sweep can test that ordering. A window is
  widened (lo first) until the smallest class keeps at least as many real images as the segment
  distills, and rounded outwards to 0.01 so the exported schedule is short and exact;
- the base's image learning rate (``lr_img`` for idc/dc/dsa/dm/mtt) log-uniform in
  ``[d / lr_factor, d * lr_factor]`` around the base config's default ``d`` for the setting (IDC
  multiplies it by the segment's IPC/10 at run time, so every segment keeps that scaling), 4
  significant digits; a base without one (a coreset) or a rate fixed by the user is not sampled.

Example::

    objective = ScheduleObjective(SweepSpec(dataset="digits", ipc=4, base="random"), load_dataset("digits"))
    objective(optuna.trial.FixedTrial({"num_segments": 2, "share_1": 0.5, "share_2": 0.5, "segment2_lo": 0.3}))
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Sequence

import optuna

from bench.data.datasets import Dataset, load_dataset
from bench.errors import BenchError
from bench.methods.registry import DistillRequest, apply_overrides, default_config, get_method
from bench.protocols import get_protocol
from bench.run.sweep import SweepSpec, sample_learning_rate, segment_reporter
from bench.train.evaluation import evaluate_synthetic, resolve_device
from bench.train.models import model_name_ok
from dasm.base_matcher import base_config, parse_base_overrides
from dasm.segment_schedule import SegmentSchedule
from dasm.sequential_matching import run_sequential

METHOD = "dasm"
# Fields of a base config that hold the synthetic images' learning rate (first match wins).
LR_FIELDS = ("lr_img",)
# DASM fields the sweep itself decides: a fixed value would be silently overridden.
SWEPT_FIELDS = ("schedule", "segments", "window_shift", "base")
WINDOW_DECIMALS = 2


# ----------------------------------------------------------------------------- the space

@dataclass(frozen=True)
class SearchSpace:
    """What a trial may sample (see the module docstring)."""

    max_segments: int = 4
    max_lo: float = 0.75
    sample_first_window: bool = False
    sample_hi: bool = False
    min_keep: float = 0.25
    lr_factor: float = 10.0

    def validate(self) -> None:
        if self.max_segments < 1:
            raise BenchError(f"max_segments must be >= 1, got {self.max_segments}")
        if not 0.0 <= self.max_lo < 1.0:
            raise BenchError(f"max_lo must be in [0, 1), got {self.max_lo}")
        if not 0.0 < self.min_keep <= 1.0:
            raise BenchError(f"min_keep must be in (0, 1], got {self.min_keep}")
        if not 1.0 <= self.lr_factor <= 1e6:  # lr_img * F must stay a usable float
            raise BenchError(f"lr_factor must be >= 1 (at most 1e6), got {self.lr_factor}")


def largest_remainder(proportions: Sequence[float], total: int) -> list[int]:
    """Integers summing to ``total``, proportional to ``proportions`` (Hamilton's method).

    Floors first, then one more to the largest fractional parts (ties: earlier entries).

    Example::

        largest_remainder([0.5, 0.3, 0.2], 4)   # [2, 1, 1]
    """
    if total < 0:
        raise BenchError(f"cannot split a negative total {total}")
    s = float(sum(proportions))
    if not proportions or s <= 0 or not math.isfinite(s):
        proportions = [1.0] * max(1, len(proportions))  # degenerate shares: split evenly
        s = float(len(proportions))
    quotas = [p / s * total for p in proportions]
    counts = [int(math.floor(q)) for q in quotas]
    order = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def segment_sizes(raw_shares: Sequence[float], ipc: int) -> tuple[int, ...]:
    """Sizes >= 1 summing to ``ipc`` from raw shares u_k in [0, 1): 1 each, then the rest split
    in proportion to ``-log(1 - u_k)`` (Dirichlet(1) on the simplex)."""
    k = len(raw_shares)
    if not 1 <= k <= ipc:
        raise BenchError(f"cannot split IPC {ipc} into {k} segments")
    weights = [-math.log1p(-min(max(u, 0.0), 1.0 - 1e-12)) for u in raw_shares]
    return tuple(1 + n for n in largest_remainder(weights, ipc - k))


def _floor(x: float) -> float:
    scale = 10 ** WINDOW_DECIMALS
    return math.floor(x * scale + 1e-9) / scale


def _ceil(x: float) -> float:
    scale = 10 ** WINDOW_DECIMALS
    return math.ceil(x * scale - 1e-9) / scale


def fit_window(lo: float, hi: float, need: float) -> tuple[float, float]:
    """``[lo, hi]`` widened to width >= ``need`` (lower end first, so the hard tail stays) and
    rounded outwards to ``WINDOW_DECIMALS``; always ``0 <= lo < hi <= 1``."""
    need = min(1.0, max(need, 10 ** -WINDOW_DECIMALS))
    if hi - lo < need:
        lo = max(0.0, hi - need)
        hi = min(1.0, lo + need)
    return max(0.0, _floor(lo)), min(1.0, _ceil(hi))


def sample_schedule(trial: optuna.trial.BaseTrial, ipc: int, space: SearchSpace = SearchSpace(),
                    min_class_size: int | None = None) -> SegmentSchedule:
    """Sample a valid :class:`SegmentSchedule` for ``ipc`` (see the module docstring).

    ``min_class_size``: real images in the smallest class; each window keeps >= its segment's size.

    Example::

        sample_schedule(optuna.trial.FixedTrial({"num_segments": 2, "share_1": 0.5, "share_2": 0.5,
                                                 "segment2_lo": 0.3}), ipc=10)   # 5@0-1,5@0.3-1
    """
    k = trial.suggest_int("num_segments", 1, max(1, min(space.max_segments, ipc)))
    raw = [trial.suggest_float(f"share_{j}", 0.0, 1.0) for j in range(1, k + 1)] if k > 1 else [0.5]
    sizes = segment_sizes(raw, ipc)
    windows = []
    for j, size in enumerate(sizes, 1):
        if j == 1 and not space.sample_first_window:
            windows.append((0.0, 1.0))
            continue
        lo = trial.suggest_float(f"segment{j}_lo", 0.0, space.max_lo)
        hi = 1.0
        if space.sample_hi:
            keep = trial.suggest_float(f"segment{j}_keep", space.min_keep, 1.0)
            hi = lo + keep * (1.0 - lo)
        need = size / (min_class_size - 1) if min_class_size and min_class_size > 1 else 0.0
        windows.append(fit_window(lo, hi, need))
    return SegmentSchedule(sizes, tuple(windows))


def learning_rate_field(base: str) -> str | None:
    """The base config's image learning-rate field (``lr_img``), or None (e.g. a coreset)."""
    names = {f.name for f in dataclasses.fields(get_method(base).config_cls)}
    return next((n for n in LR_FIELDS if n in names), None)


def format_base_overrides(values: dict[str, Any]) -> str:
    """``{"iterations": 5, "lr_img": 0.01}`` -> ``"iterations=5;lr_img=0.01"`` (DASM's CLI form)."""
    for key, value in values.items():
        if any(ch in f"{key}{value}" for ch in ";="):
            raise BenchError(f"base override {key}={value!r} cannot hold ';' or '='")
    return ";".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


# ----------------------------------------------------------------------------- the objective

def search_space(value: Any) -> SearchSpace:
    """The sweep spec's ``space`` as a validated :class:`SearchSpace`: None (the defaults), a
    SearchSpace, or a dict of its fields (what the CLI's ``--max-segments`` ... options give)."""
    if value is None:
        space = SearchSpace()
    elif isinstance(value, SearchSpace):
        space = value
    elif isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(SearchSpace)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise BenchError(f"DASM's search space has no setting {unknown[0]!r}; settings: {', '.join(sorted(names))}")
        space = SearchSpace(**value)
    else:
        raise BenchError(f"a DASM search space is a SearchSpace or a dict of its settings, got {type(value).__name__}")
    space.validate()
    return space


class ScheduleObjective:
    """``objective(trial) -> validation accuracy (%)`` of DASM with the trial's schedule (NaN, i.e. a
    failed trial, when the run raises a BenchError such as a diverged loss): the ``search`` hook of
    the ``dasm`` method, which :func:`bench.run.sweep.run_sweep` optimises.

    Everything fixed is resolved once (dataset, config checks); each call samples, distills with
    :func:`run_sequential` (reporting per segment to the pruner) and evaluates on ``data.val``.
    """

    def __init__(self, spec: SweepSpec, data: Dataset | None = None) -> None:
        spec.validate()
        fixed = sorted(set(spec.overrides) & set(SWEPT_FIELDS))
        if fixed:
            raise BenchError(f"--set {fixed[0]} is decided by the sweep (use --base for the base matcher)")
        self.space = search_space(spec.space)
        self.spec = spec
        # tuning: the validation split is held out of the training set the sweep distills from
        self.data = (data.holdout_view() if data is not None
                     else load_dataset(spec.dataset, spec.data_root, spec.download, train_split="train-val"))
        self.data.check_ipc(spec.ipc)
        self.device = resolve_device(spec.device)
        self.fixed = {"base": spec.base, **spec.overrides}
        # resolving the fixed part now turns a bad --set into one error line instead of N failed trials
        config = apply_overrides(default_config(METHOD, self.data.name, spec.ipc), self.fixed)
        self.base_overrides = parse_base_overrides(config.base_overrides)
        self.lr_field = learning_rate_field(spec.base)
        if self.lr_field in self.base_overrides:
            self.lr_field = None  # fixed by the user: not swept
        self.lr_centre = (getattr(base_config(spec.base, self.data.name, spec.ipc, self.base_overrides),
                                  self.lr_field) if self.lr_field else None)
        self.protocol = get_protocol(spec.protocol or config.eval_protocol, spec.eval_epochs)
        model_name_ok(spec.arch)
        self.min_class_size = min(len(self.data.train.indices_by_class[c]) for c in range(self.data.num_classes))

    @staticmethod
    def describe(trial: optuna.trial.FrozenTrial) -> str:
        """A trial's schedule and swept learning rate, for the sweep's one line per trial."""
        cfg = trial.user_attrs.get("config", {})
        lr = ";".join(p for p in str(cfg.get("base_overrides", "")).split(";") if p.startswith(LR_FIELDS))
        return f"{cfg.get('schedule', '?')}{' ' + lr if lr else ''}"

    @staticmethod
    def summary(config: dict[str, Any]) -> str:
        """The exported config's swept settings, for the sweep's closing line."""
        return f"schedule {config['schedule']} base_overrides {config['base_overrides'] or '-'}"

    def trial_overrides(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample the trial's schedule and learning rate; return the DASM config overrides
        (JSON-safe strings/numbers, exactly what ``dasm-bench distill --config`` applies)."""
        schedule = sample_schedule(trial, self.spec.ipc, self.space, self.min_class_size)
        base_overrides = dict(self.base_overrides)
        if self.lr_field:
            base_overrides[self.lr_field] = sample_learning_rate(trial, self.lr_field, float(self.lr_centre),
                                                                 self.space.lr_factor)
        return {**self.fixed, "schedule": schedule.to_string(), "base_overrides": format_base_overrides(base_overrides)}

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        spec = self.spec
        overrides = self.trial_overrides(trial)
        trial.set_user_attr("config", overrides)
        trial.set_user_attr("worker", f"{spec.worker}@{socket.gethostname()}:{os.getpid()}")
        try:
            config = apply_overrides(default_config(METHOD, self.data.name, spec.ipc), overrides)
            schedule = config.resolved_schedule(spec.ipc)
            request = DistillRequest(self.data, spec.ipc, spec.seed, self.device, progress=False)
            start = time.perf_counter()
            syn = run_sequential(request, config, on_segment=segment_reporter(trial, schedule.sizes))
            trial.set_user_attr("distill_seconds", round(time.perf_counter() - start, 2))
            res = evaluate_synthetic(syn, self.data, spec.arch, self.protocol, spec.eval_models, spec.seed,
                                     self.device, split="val")
        except BenchError as exc:  # a diverged run, a degenerate config: this trial fails, the sweep goes on
            trial.set_user_attr("error", str(exc).splitlines()[0][:300])
            return math.nan  # Optuna marks the trial FAIL (one warning line, no traceback)
        trial.set_user_attr("eval_seconds", round(res.seconds, 2))
        trial.set_user_attr("val_std", round(res.last_std, 4))
        return res.last_mean
