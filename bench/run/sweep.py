"""Optuna sweeps of a method's own search space: the method-neutral study machinery.

A method plugs in through the ``search`` hook on its registered spec (``register_method(...,
search="module:attribute")``): ``hook(spec, data)`` returns the objective, a callable
``objective(trial) -> validation accuracy (%)`` with a ``protocol`` attribute (what it evaluates
with) and optionally ``describe(frozen_trial) -> str`` and ``summary(config) -> str`` (a trial's
settings, for the progress lines). The objective stores the config it ran as the trial's
``config`` user attribute; the best one is exported as ``best.json``, a config file for
``dasm-bench distill --config``. DASM's objective (the segment schedule and the base's image
learning rate) is :mod:`dasm.schedule_search`.

Here: the sweep spec, the study (storage, sampler, pruner, resume), pruning of runs made of
segments, the learning-rate sampler, the export (``best.json``, ``trials.csv``, Optuna's plots) and
the run loop with its one line per trial. The test split is never looked at while tuning: the
objective scores on the validation split.

A trial whose run raises a BenchError (a diverged loss) is recorded as failed and the sweep goes
on. Several workers (processes or machines) join one study through a shared storage: SQLite by
default, any SQLAlchemy URL (PostgreSQL) for many workers; give each its own ``worker`` index.

Pruning: after segment k a sequential method reports the validation accuracy of a model trained on
segments 1..k. It is reported at ``step`` = images per class distilled so far (not k): MedianPruner
compares trials at equal steps, and a K = 1 trial's step 1 (all IPC) against a K = 4 trial's
step 1 (a quarter of IPC) would prune multi-segment schedules for being smaller, not worse.

Example::

    spec = SweepSpec(dataset="digits", ipc=10, base="dm", trials=20, overrides={"base_overrides": "iterations=50"})
    result = run_sweep(spec)          # results/sweeps/dasm-dm-digits-ipc10/study.db + best.json
    # dasm-bench distill --method dasm --dataset digits --ipc 10 --config results/sweeps/dasm-dm-digits-ipc10/best.json
"""

from __future__ import annotations

import io
import json
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import optuna
from optuna.trial import TrialState
from sqlalchemy.exc import DBAPIError

from bench.bounds import MAX_SEED, MAX_WORKERS
from bench.data.datasets import Dataset
from bench.errors import BenchError
from bench.paths import safe_slug

LR_DIGITS = 4
OPEN_ATTEMPTS = 5


# ----------------------------------------------------------------------------- sampling, pruning

def sample_learning_rate(trial: optuna.trial.BaseTrial, name: str, centre: float, factor: float) -> float:
    """Log-uniform in ``[centre / factor, centre * factor]``, rounded to 4 significant digits."""
    if not centre > 0:
        raise BenchError(f"cannot sweep {name} around a non-positive default {centre}")
    if factor == 1.0:
        return float(centre)
    value = trial.suggest_float(name, centre / factor, centre * factor, log=True)
    return float(f"{value:.{LR_DIGITS}g}")


def segment_reporter(trial: optuna.trial.BaseTrial, sizes: Sequence[int]) -> Callable[[int, float], None]:
    """``on_segment(k, acc)`` for a run in segments (DASM's): report ``acc`` at step = images per
    class after segment k, raise ``optuna.TrialPruned`` when the pruner says so (the exception ends
    the run, e.g. DASM's ``run_sequential``)."""
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
    """One sweep (one worker's share of it) of ``method``'s search space. ``overrides``: fixed
    config fields (strings as from ``--set``, e.g. DASM's ``{"base_overrides": "iterations=20",
    "difficulty_epochs": "50"}``); ``base`` and ``space``: the base matcher and the search-space
    settings of a method that has them (DASM: :class:`dasm.schedule_search.SearchSpace` or a dict
    of its fields, None for its defaults), checked by the method's objective."""

    dataset: str = "digits"
    ipc: int = 10
    base: str = "idc"
    trials: int = 20
    seed: int = 0
    worker: int = 0                     # gives each worker of one study its own sampler stream
    study: str | None = None            # default <method>-<base>-<dataset>-ipc<N>
    storage: str | None = None          # default sqlite:///<out>/study.db
    out: str | None = None              # default results/sweeps/<study>
    timeout: float | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    space: Any = None
    arch: str = "convnet"
    protocol: str | None = None         # default: the base's evaluation protocol
    eval_epochs: int | None = None
    eval_models: int = 2
    prune_startup: int = 3              # completed trials before MedianPruner may prune
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    method: str = "dasm"                # whose registered ``search`` hook gives the objective

    @property
    def study_name(self) -> str:
        return self.study or f"{self.method}-{self.base}-{self.dataset}-ipc{self.ipc}"

    @property
    def out_dir(self) -> Path:
        # the study name is free text (``--study``): a slug, so "../../x" stays under results/sweeps
        return Path(self.out) if self.out else Path("results/sweeps") / safe_slug(self.study_name)

    @property
    def storage_url(self) -> str:
        """``--storage``, else a SQLite file inside the output directory (``<out>/study.db``); a
        study started before that moved in (``<out>.db`` beside the directory) is joined where it is."""
        if self.storage:
            return self.storage
        beside = self.out_dir.parent / (self.out_dir.name + ".db")
        return f"sqlite:///{beside if beside.is_file() else self.out_dir / 'study.db'}"

    @property
    def sampler_seed(self) -> int:
        """TPE's seed: ``seed * 10007 + worker`` as before, folded into numpy's seed range
        [0, 2**32 - 1] (a seed above 429,196 overflowed it); smaller seeds keep their streams."""
        return (self.seed * 10_007 + self.worker) % 2**32

    def validate(self) -> None:
        # an empty name or URL is a typo, not a request for the default (which leaving it out gives)
        for flag, value in (("--study", self.study), ("--storage", self.storage)):
            if value is not None and not value.strip():
                raise BenchError(f"{flag} is empty; leave it out for the default")
        if self.trials < 1:
            raise BenchError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout is not None and not self.timeout > 0:
            raise BenchError(f"--timeout must be positive seconds, got {self.timeout}")
        if self.eval_epochs is not None and self.eval_epochs < 1:
            raise BenchError(f"--epochs must be >= 1, got {self.eval_epochs}")
        if self.eval_models < 1:
            raise BenchError(f"--models must be >= 1, got {self.eval_models}")
        if not 0 <= self.worker <= MAX_WORKERS:
            raise BenchError(f"--worker must be in [0, {MAX_WORKERS}], got {self.worker}")
        if not 0 <= self.seed <= MAX_SEED:
            raise BenchError(f"--seed must be in [0, {MAX_SEED}], got {self.seed}")
        if self.prune_startup < 0:
            raise BenchError(f"prune_startup must be >= 0, got {self.prune_startup}")


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
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed)
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


# ----------------------------------------------------------------------------- export

def best_config(study: optuna.Study, spec: SweepSpec, protocol: str) -> dict[str, Any]:
    """The best completed trial as a config file for ``dasm-bench distill --method <method> --config``."""
    try:
        best = study.best_trial
    except ValueError:
        raise BenchError(f"study {study.study_name!r} has no completed trial yet; nothing to export") from None
    return {
        "method": spec.method, "dataset": spec.dataset, "ipc": spec.ipc, "seed": spec.seed,
        "study": study.study_name, "storage": mask_url(spec.storage_url), "trial": best.number,
        "objective": f"last-epoch val accuracy (%) of {spec.eval_models} {spec.arch} model(s), protocol {protocol}",
        "value": best.value, "params": best.params,
        "config": best.user_attrs["config"],
        # other completed trials scoring exactly the best value: the objective could not rank them
        # (a small validation split at its ceiling); the exported one is merely the first
        "tied_trials": [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                        if t.number != best.number and t.value == best.value],
        "command": (f"dasm-bench distill --method {spec.method} --dataset {spec.dataset} --ipc {spec.ipc} "
                    f"--seed {spec.seed} --config <this file>"),
    }


def _write_atomic(path: Path, content: str | bytes) -> None:
    # several workers may export at once: readers see the old or the new file, never half of one
    from bench.files import write_atomically

    write_atomically(path, content)


def save_plots(study: optuna.Study, out: Path) -> tuple[list[Path], list[str]]:
    """Optuna's matplotlib plots as PNG: optimisation history, intermediate values (per-segment
    accuracy), parameter importances. Returns (written paths, notes about skipped plots)."""
    from bench.report.pictures import pyplot

    plt = pyplot()
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
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=120)
            plt.close(fig)
            _write_atomic(path, buffer.getvalue())
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
    if payload["tied_trials"]:
        notes.insert(0, f"{len(payload['tied_trials']) + 1} completed trials tie at the best value "
                        f"{payload['value']:.2f}: the objective cannot rank them (a larger validation split, "
                        f"more models per trial, or a harder setting would); best.json holds the first")
    return {"best": best_path, "trials": csv_path, "plots": plots, "notes": notes, "payload": payload}


# ----------------------------------------------------------------------------- running

@dataclass
class SweepResult:
    study: optuna.Study
    best_path: Path
    plots: list[Path]
    notes: list[str]


def _progress_callback(spec: SweepSpec, started: float,
                       describe: Callable[[optuna.trial.FrozenTrial], str]
                       ) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
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
        print(f"{head} {what} | {describe(trial)} | {best} | {time.perf_counter() - started:.0f}s", flush=True)

    return report


def make_objective(spec: SweepSpec, data: Dataset | None = None) -> Callable[[optuna.trial.BaseTrial], float]:
    """The objective of ``spec.method``'s registered ``search`` hook (a one-line error for a method
    without one)."""
    from bench.methods.registry import get_method

    hook = get_method(spec.method).hook("search")
    if hook is None:
        raise BenchError(f"method {spec.method!r} has no search space to sweep (no 'search' hook registered)")
    return hook(spec, data)


def run_sweep(spec: SweepSpec, data: Dataset | None = None, verbose: bool = True) -> SweepResult:
    """Run ``spec.trials`` trials (or until ``spec.timeout``) in this process, joining the study if
    it exists, then export the best schedule and the plots.

    Example::

        run_sweep(SweepSpec(dataset="digits", ipc=4, base="random", trials=3,
                            overrides={"difficulty_epochs": "2"}, eval_epochs=5, out="/tmp/sw"))
    """
    objective = make_objective(spec, data)
    study = open_study(spec)
    before = len(study.trials)
    if verbose:
        print(f"study {spec.study_name} at {mask_url(spec.storage_url)}: {before} trial(s) so far; "
              f"running {spec.trials} more (worker {spec.worker}, {objective.protocol.name} on val, "
              f"{spec.eval_models} model(s))", flush=True)
    started = time.perf_counter()
    describe = getattr(objective, "describe", None) or (lambda trial: str(trial.params))
    callbacks = [_progress_callback(spec, started, describe)] if verbose else []
    study.optimize(objective, n_trials=spec.trials, timeout=spec.timeout, callbacks=callbacks, gc_after_trial=True)
    exported = export_study(study, spec, objective.protocol.name)
    if verbose:
        p = exported["payload"]
        summary = getattr(objective, "summary", None) or (lambda config: json.dumps(config, sort_keys=True))
        print(f"best: trial #{p['trial']} val {p['value']:.2f}% {summary(p['config'])}")
        print(f"config: {exported['best']} (dasm-bench distill --method {spec.method} --dataset {spec.dataset} "
              f"--ipc {spec.ipc} --config {exported['best']})")
        print(f"trials: {exported['trials']}; plots: {', '.join(str(p) for p in exported['plots']) or 'none'}")
        for note in exported["notes"]:
            print(f"note: {note}")
    return SweepResult(study, exported["best"], exported["plots"], exported["notes"])
