"""Optuna sweeps of DASM's segment schedule (and the base matcher's image learning rate).

One trial samples a schedule and a learning rate, distills with DASM
(:func:`dasm.sequential_matching.run_sequential`), and scores the result on the VALIDATION split
(``evaluate_synthetic(..., split="val")``); the test split is never looked at while tuning.

The sampled space (:func:`sample_schedule`, :func:`sample_learning_rate`):

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

A trial whose run raises a BenchError (a diverged loss) is recorded as failed and the sweep goes
on. Several workers (processes or machines) join one study through a shared storage: SQLite by
default, any SQLAlchemy URL (PostgreSQL) for many workers; give each its own ``worker`` index.

Pruning: after segment k DASM reports the validation accuracy of a model trained on segments
1..k. It is reported at ``step`` = images per class distilled so far (not k): MedianPruner
compares trials at equal steps, and a K = 1 trial's step 1 (all IPC) against a K = 4 trial's
step 1 (a quarter of IPC) would prune multi-segment schedules for being smaller, not worse.

Example::

    spec = SweepSpec(dataset="digits", ipc=10, base="dm", trials=20, overrides={"base_overrides": "iterations=50"})
    result = run_sweep(spec)          # results/sweeps/dasm-dm-digits-ipc10.db + .../best.json
    # dasm-bench distill --method dasm --dataset digits --ipc 10 --config results/sweeps/dasm-dm-digits-ipc10/best.json
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from sqlalchemy.exc import DBAPIError

from bench.data import Dataset, load_dataset
from bench.errors import BenchError
from bench.evaluation import evaluate_synthetic, get_protocol, resolve_device
from bench.models import model_name_ok
from bench.paths import safe_slug
from bench.registry import DistillRequest, apply_overrides, default_config, get_method
from dasm.segment_schedule import SegmentSchedule

METHOD = "dasm"
# Fields of a base config that hold the synthetic images' learning rate (first match wins).
LR_FIELDS = ("lr_img",)
# DASM fields the sweep itself decides: a fixed value would be silently overridden.
SWEPT_FIELDS = ("schedule", "segments", "window_shift", "base")
WINDOW_DECIMALS = 2
LR_DIGITS = 4
OPEN_ATTEMPTS = 5


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
        if not self.lr_factor >= 1.0:
            raise BenchError(f"lr_factor must be >= 1, got {self.lr_factor}")


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


def sample_learning_rate(trial: optuna.trial.BaseTrial, name: str, centre: float, factor: float) -> float:
    """Log-uniform in ``[centre / factor, centre * factor]``, rounded to 4 significant digits."""
    if not centre > 0:
        raise BenchError(f"cannot sweep {name} around a non-positive default {centre}")
    if factor == 1.0:
        return float(centre)
    value = trial.suggest_float(name, centre / factor, centre * factor, log=True)
    return float(f"{value:.{LR_DIGITS}g}")


def format_base_overrides(values: dict[str, Any]) -> str:
    """``{"iterations": 5, "lr_img": 0.01}`` -> ``"iterations=5;lr_img=0.01"`` (DASM's CLI form)."""
    for key, value in values.items():
        if any(ch in f"{key}{value}" for ch in ";="):
            raise BenchError(f"base override {key}={value!r} cannot hold ';' or '='")
    return ";".join(f"{k}={v!r}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


# ----------------------------------------------------------------------------- pruning

def segment_reporter(trial: optuna.trial.BaseTrial, sizes: Sequence[int]) -> Callable[[int, float], None]:
    """``on_segment(k, acc)`` for DASM: report ``acc`` at step = images per class after segment k,
    raise ``optuna.TrialPruned`` when the pruner says so (the exception ends ``run_sequential``)."""
    cumulative = [sum(sizes[:k]) for k in range(1, len(sizes) + 1)]

    def on_segment(k: int, val_accuracy: float) -> None:
        step = cumulative[k - 1]
        trial.report(val_accuracy, step=step)
        trial.set_user_attr(f"val_after_segment{k}", round(float(val_accuracy), 4))
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after segment {k} ({step} images/class): val {val_accuracy:.2f}%")

    return on_segment


# ----------------------------------------------------------------------------- the sweep

@dataclass
class SweepSpec:
    """One sweep (one worker's share of it). ``overrides``: fixed DASM config fields (strings as
    from ``--set``, e.g. ``{"base_overrides": "iterations=20", "difficulty_epochs": "50"}``)."""

    dataset: str = "digits"
    ipc: int = 10
    base: str = "idc"
    trials: int = 20
    seed: int = 0
    worker: int = 0                     # gives each worker of one study its own sampler stream
    study: str | None = None            # default dasm-<base>-<dataset>-ipc<N>
    storage: str | None = None          # default sqlite:///<out>.db
    out: str | None = None              # default results/sweeps/<study>
    timeout: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    space: SearchSpace = field(default_factory=SearchSpace)
    arch: str = "convnet"
    protocol: str | None = None         # default: the base's evaluation protocol
    eval_epochs: int | None = None
    eval_models: int = 2
    prune_startup: int = 3              # completed trials before MedianPruner may prune
    device: str = "auto"
    data_root: str | None = None
    download: bool = False

    @property
    def study_name(self) -> str:
        return self.study or f"{METHOD}-{self.base}-{self.dataset}-ipc{self.ipc}"

    @property
    def out_dir(self) -> Path:
        # the study name is free text (``--study``): a slug, so "../../x" stays under results/sweeps
        return Path(self.out) if self.out else Path("results/sweeps") / safe_slug(self.study_name)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.out_dir.parent / (self.out_dir.name + '.db')}"

    def validate(self) -> None:
        if self.trials < 1:
            raise BenchError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout is not None and not self.timeout > 0:
            raise BenchError(f"--timeout must be positive seconds, got {self.timeout}")
        if self.eval_epochs is not None and self.eval_epochs < 1:
            raise BenchError(f"--epochs must be >= 1, got {self.eval_epochs}")
        if self.eval_models < 1:
            raise BenchError(f"--models must be >= 1, got {self.eval_models}")
        if self.worker < 0:
            raise BenchError(f"--worker must be >= 0, got {self.worker}")
        if self.prune_startup < 0:
            raise BenchError(f"prune_startup must be >= 0, got {self.prune_startup}")
        fixed = sorted(set(self.overrides) & set(SWEPT_FIELDS))
        if fixed:
            raise BenchError(f"--set {fixed[0]} is decided by the sweep (use --base for the base matcher)")
        self.space.validate()


def mask_url(url: str) -> str:
    """A storage URL with its password hidden (it is printed and written to best.json)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_study(spec: SweepSpec) -> optuna.Study:
    """Create or join (``load_if_exists``) the study: TPE seeded by (seed, worker), MedianPruner."""
    url = spec.storage_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own one line per trial instead
    sampler = optuna.samplers.TPESampler(seed=spec.seed * 10_007 + spec.worker)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=spec.prune_startup, n_warmup_steps=0)
    error: Exception = RuntimeError("no attempt")
    for _ in range(OPEN_ATTEMPTS):
        try:
            return optuna.create_study(study_name=spec.study_name, storage=url, sampler=sampler, pruner=pruner,
                                       direction="maximize", load_if_exists=True)
        except DBAPIError as exc:
            # workers started together on a fresh database race to create Optuna's tables
            # (optuna#1092): the loser's retry finds them made; a server that stays down still fails
            error = exc
            time.sleep(0.5 + random.random())  # jitter; not a result-affecting random stream
        except Exception as exc:  # driver missing, bad URL, a study with another direction
            error = exc
            break
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    raise BenchError(f"cannot open study {spec.study_name!r} at {mask_url(url)}: {first[:160]}") from None


class SweepObjective:
    """``objective(trial) -> validation accuracy (%)`` of DASM with the trial's schedule (NaN, i.e. a
    failed trial, when the run raises a BenchError such as a diverged loss).

    Everything fixed is resolved once (dataset, config checks); each call samples, distills with
    :func:`run_sequential` (reporting per segment to the pruner) and evaluates on ``data.val``.
    """

    def __init__(self, spec: SweepSpec, data: Dataset | None = None) -> None:
        from dasm.base_matcher import base_config, parse_base_overrides

        spec.validate()
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

    def trial_overrides(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample the trial's schedule and learning rate; return the DASM config overrides
        (JSON-safe strings/numbers, exactly what ``dasm-bench distill --config`` applies)."""
        schedule = sample_schedule(trial, self.spec.ipc, self.spec.space, self.min_class_size)
        base_overrides = dict(self.base_overrides)
        if self.lr_field:
            base_overrides[self.lr_field] = sample_learning_rate(trial, self.lr_field, float(self.lr_centre),
                                                                 self.spec.space.lr_factor)
        return {**self.fixed, "schedule": schedule.to_string(), "base_overrides": format_base_overrides(base_overrides)}

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        from dasm.sequential_matching import run_sequential

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
        trial.set_user_attr("val_best", round(res.best_mean, 4))
        trial.set_user_attr("val_std", round(res.last_std, 4))
        return res.last_mean


# ----------------------------------------------------------------------------- export

def best_config(study: optuna.Study, spec: SweepSpec, protocol: str) -> dict[str, Any]:
    """The best completed trial as a config file for ``dasm-bench distill --method dasm --config``."""
    try:
        best = study.best_trial
    except ValueError:
        raise BenchError(f"study {study.study_name!r} has no completed trial yet; nothing to export") from None
    return {
        "method": METHOD, "dataset": spec.dataset, "ipc": spec.ipc, "seed": spec.seed,
        "study": study.study_name, "storage": mask_url(spec.storage_url), "trial": best.number,
        "objective": f"last-epoch val accuracy (%) of {spec.eval_models} {spec.arch} model(s), protocol {protocol}",
        "value": best.value, "params": best.params,
        "config": best.user_attrs["config"],
        "command": (f"dasm-bench distill --method {METHOD} --dataset {spec.dataset} --ipc {spec.ipc} "
                    f"--seed {spec.seed} --config <this file>"),
    }


def _write_atomic(path: Path, text: str) -> None:
    # several workers may export at once: readers see the old or the new file, never half of one
    from bench.synthetic import write_atomically

    write_atomically(path, text.encode())


def save_plots(study: optuna.Study, out: Path) -> tuple[list[Path], list[str]]:
    """Optuna's matplotlib plots as PNG: optimisation history, intermediate values (per-segment
    accuracy), parameter importances. Returns (written paths, notes about skipped plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written, notes = [], []
    plots = {"optimization_history": ovm.plot_optimization_history,
             "intermediate_values": ovm.plot_intermediate_values,
             "param_importances": ovm.plot_param_importances}
    for name, fn in plots.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
                ax = fn(study)
            fig = (ax.flat[0] if hasattr(ax, "flat") else ax).get_figure()
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            path = out / f"{name}.png"
            tmp = out / f".{name}.{os.getpid()}.png"
            fig.savefig(tmp, dpi=120)
            os.replace(tmp, path)
            plt.close(fig)
            written.append(path)
        except Exception as exc:  # too few completed trials / parameters for importances, ...
            notes.append(f"{name} skipped: {(str(exc).splitlines() or [type(exc).__name__])[0][:120]}")
    return written, notes


def export_study(study: optuna.Study, spec: SweepSpec, protocol: str) -> dict[str, Any]:
    """Write ``best.json``, ``trials.csv`` and the plots into ``spec.out_dir``."""
    out = spec.out_dir
    out.mkdir(parents=True, exist_ok=True)
    payload = best_config(study, spec, protocol)
    best_path = out / "best.json"
    _write_atomic(best_path, json.dumps(payload, indent=2) + "\n")
    csv_path = out / "trials.csv"
    _write_atomic(csv_path, study.trials_dataframe().to_csv(index=False))
    plots, notes = save_plots(study, out)
    return {"best": best_path, "trials": csv_path, "plots": plots, "notes": notes, "payload": payload}


# ----------------------------------------------------------------------------- running

@dataclass
class SweepResult:
    study: optuna.Study
    best_path: Path
    plots: list[Path]
    notes: list[str]


def _describe(trial: optuna.trial.FrozenTrial) -> str:
    cfg = trial.user_attrs.get("config", {})
    lr = ";".join(p for p in str(cfg.get("base_overrides", "")).split(";") if p.startswith(LR_FIELDS))
    return f"{cfg.get('schedule', '?')}{' ' + lr if lr else ''}"


def _progress_callback(spec: SweepSpec, started: float) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    done = [0]

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done[0] += 1
        head = f"[{done[0]}/{spec.trials} trial #{trial.number}]"
        state = trial.state
        if state == optuna.trial.TrialState.COMPLETE:
            what = f"val {trial.value:.2f}%"
        elif state == optuna.trial.TrialState.PRUNED:
            last = max(trial.intermediate_values) if trial.intermediate_values else 0
            what = f"pruned at {last} images/class"
        else:
            what = f"failed: {trial.user_attrs.get('error', state.name)}"
        try:
            best = f"best {study.best_value:.2f}% (#{study.best_trial.number})"
        except ValueError:
            best = "no completed trial yet"
        print(f"{head} {what} | {_describe(trial)} | {best} | {time.perf_counter() - started:.0f}s", flush=True)

    return report


def run_sweep(spec: SweepSpec, data: Dataset | None = None, verbose: bool = True) -> SweepResult:
    """Run ``spec.trials`` trials (or until ``spec.timeout``) in this process, joining the study if
    it exists, then export the best schedule and the plots.

    Example::

        run_sweep(SweepSpec(dataset="digits", ipc=4, base="random", trials=3,
                            overrides={"difficulty_epochs": "2"}, eval_epochs=5, out="/tmp/sw"))
    """
    objective = SweepObjective(spec, data)
    study = open_study(spec)
    before = len(study.trials)
    if verbose:
        print(f"study {spec.study_name} at {mask_url(spec.storage_url)}: {before} trial(s) so far; "
              f"running {spec.trials} more (worker {spec.worker}, {objective.protocol.name} on val, "
              f"{spec.eval_models} model(s))", flush=True)
    started = time.perf_counter()
    callbacks = [_progress_callback(spec, started)] if verbose else []
    study.optimize(objective, n_trials=spec.trials, timeout=spec.timeout, callbacks=callbacks, gc_after_trial=True)
    exported = export_study(study, spec, objective.protocol.name)
    if verbose:
        p = exported["payload"]
        print(f"best: trial #{p['trial']} val {p['value']:.2f}% schedule {p['config']['schedule']} "
              f"base_overrides {p['config']['base_overrides'] or '-'}")
        print(f"config: {exported['best']} (dasm-bench distill --method {METHOD} --dataset {spec.dataset} "
              f"--ipc {spec.ipc} --config {exported['best']})")
        print(f"trials: {exported['trials']}; plots: {', '.join(str(p) for p in exported['plots']) or 'none'}")
        for note in exported["notes"]:
            print(f"note: {note}")
    return SweepResult(study, exported["best"], exported["plots"], exported["notes"])
