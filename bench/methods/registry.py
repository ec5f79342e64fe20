"""Method registry and the one distiller interface every method implements.

A method is one module with one entry point ``fn(request, config) -> SyntheticSet`` and a
small config dataclass, registered by name (as timm's ``@register_model``):

    @dataclass
    class RandomConfig:
        pass

    @register_method("random", RandomConfig, kind="coreset")
    def random_selection(request: DistillRequest, config: RandomConfig) -> SyntheticSet: ...

and run through :func:`distill`:

    syn = distill("random", DistillRequest(load_dataset("digits"), ipc=10, seed=0))

The interface is built for DASM: ``pool`` restricts the real images a method may use per
class (a difficulty window), and ``frozen`` holds earlier segments that stay unchanged but
take part in training the matching network. A method returns only its NEW images (``ipc``
per class); the caller joins segments with ``SyntheticSet.concat``. ``hooks`` carries SeqMatch's
per-segment mechanics (:class:`SegmentHooks`) to a base that honours them (IDC).
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor, nn

from bench.data.datasets import Dataset
from bench.errors import BenchError

# config handling lives in bench.methods.config; its names stay importable from here
from bench.methods.config import (  # noqa: F401
    DSA_REFERENCE,
    apply_overrides,
    canonical_overrides,
    config_dict,
    config_hash,
    distill_key,
    split_payload,
)
from bench.methods.index import BUILTIN_PACKAGES, builtin_method_index
from bench.protocols import reference_protocol
from bench.store.synthetic import SyntheticSet
from bench.suggest import unknown_name_error
from bench.version import code_version


@dataclass
class SegmentHooks:
    """SeqMatch's per-segment mechanics, handed by ``dasm``/``seq`` to a base that honours them (IDC).

    Reference: shqii1j/seqmatch, ``seqmatch-idc/condense_new.py``, ``condense()``:

    - every ``fix_iter`` outer iterations (the base's own config field) the base builds a fresh
      network and ``warm_up(net, seed)``
      trains it in place on the earlier segments (lines 557-563; a no-op for segment 1); every
      iteration then matches with a COPY of that network (line 565), so the real-data network
      updates of one iteration do not carry over to the next;
    - every ``score_every`` outer iterations (and after the last) the current images are a
      candidate; ``score(candidate)`` is the held-out accuracy of earlier segments + candidate and
      the best-scoring candidate is returned (lines 645-666; SeqMatch scores on the test split,
      the callers here score on the validation split).
    """

    warm_up: Callable[[nn.Module, int], None]
    score: Callable[[SyntheticSet], float]
    score_every: int


@dataclass
class DistillRequest:
    """What to distill: ``ipc`` new images per class from ``data.train``."""

    data: Dataset
    ipc: int
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    pool: list[Tensor] | None = None       # per class: indices into data.train this method may use
    frozen: SyntheticSet | None = None     # earlier segments: read-only, but train the matching net
    progress: bool = True
    segment: int = 0                        # segment id given to the new images
    hooks: SegmentHooks | None = None       # SeqMatch mechanics for a later segment (None: the plain base)

    def pool_indices(self, c: int) -> Tensor:
        """Training-split indices of class ``c`` that this request allows."""
        return self.data.train.indices_by_class[c] if self.pool is None else self.pool[c]

    def check_pool_sizes(self, n: int, method: str) -> None:
        """One-line error when a class's pool holds fewer than ``n`` images (a method that picks
        ``n`` distinct real images per class cannot repeat one)."""
        for c in range(self.data.num_classes):
            size = len(self.pool_indices(c))
            if size < n:
                raise BenchError(f"{method}: class {c} has {size} real images in its pool, fewer than ipc {n}")

    def random_pool_indices(self, n: int, generator: torch.Generator, method: str) -> Tensor:
        """Class-major training-split indices: ``n`` distinct random pool images per class (one
        ``randperm`` of each class's pool from ``generator``), e.g. a method's "real" init.

        Example::

            idx = request.random_pool_indices(request.ipc, request.generator(0), "dm")
        """
        self.check_pool_sizes(n, method)
        return torch.cat([pool[torch.randperm(len(pool), generator=generator)[:n]]
                          for pool in (self.pool_indices(c) for c in range(self.data.num_classes))])

    def generator(self, stream: int = 0) -> torch.Generator:
        """A CPU generator seeded from (seed, stream): independent, reproducible random streams."""
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + stream)
        return g

    def validate(self) -> None:
        self.data.check_ipc(self.ipc)
        if self.pool is not None:
            if len(self.pool) != self.data.num_classes:
                raise BenchError(f"pool has {len(self.pool)} classes, dataset has {self.data.num_classes}")
            for c, idx in enumerate(self.pool):
                if len(idx) == 0:
                    raise BenchError(f"the real-data pool of class {c} is empty")
                if (self.data.train.labels[idx] != c).any():
                    raise BenchError(f"the real-data pool of class {c} holds images of other classes")


Distiller = Callable[[DistillRequest, Any], SyntheticSet]


@dataclass
class MethodSpec:
    name: str
    fn: Distiller
    config_cls: type
    kind: str           # "coreset", "matching" or "dasm"
    description: str
    # how tables and figures show the method (bench/report/style.py turns these into lines and markers)
    group: str = ""     # "coresets", "matchers" or "dasm": a block of rows, a line style
    order: int = 1000   # position in tables and legends (papers' order, not alphabetical)
    # (colour, marker) is the method's own: no other registered method has the pair, no colour
    # repeats within a group, no marker repeats at all (tests/test_figure_style.py)
    colour: str = ""    # one of bench.report.style.METHOD_COLOURS (Okabe-Ito, colour-blind safe); "": grey
    marker: str = "o"   # a matplotlib marker

    @property
    def protocol(self) -> str:
        """The method's own evaluation protocol (its config's ``eval_protocol``, else ``dc``)."""
        return str(getattr(self.config_cls, "eval_protocol", "dc") or "dc")
    # int config fields that set the distillation budget, scaled together by a budget ladder
    # (bench.spec.budget); None: the method has no budget to scale (coresets)
    budget_fields: tuple[str, ...] | None = None
    # hooks through which the harness uses what only the method knows, as "module:attribute" so the
    # harness never imports a method module by name and registering one imports nothing more:
    # diagnostics(syn, path) -> [written files]: a figure of what the method recorded in a set
    # (none when the set carries nothing); search(sweep_spec, data) -> an Optuna objective for
    # `dasm-bench sweep` (see bench.run.sweep)
    diagnostics: str = ""
    search: str = ""
    # (reference method, label) pairs whose paired difference to this method every results
    # directory draws (bench.report.figures.paired_figure): what the method claims to beat
    paired_against: tuple[tuple[str, str], ...] = ()

    def hook(self, name: str) -> Callable[..., Any] | None:
        """The method's ``diagnostics`` or ``search`` hook, imported on first use (None if it has none).

        Example::

            figure = get_method("dasm").hook("diagnostics")   # dasm.diagnostics.diagnostics_figures
        """
        if name not in HOOKS:
            raise ValueError(f"unknown method hook {name!r}; hooks: {', '.join(HOOKS)}")
        ref = getattr(self, name)
        if not ref:
            return None
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)



_METHODS: dict[str, MethodSpec] = {}
HOOKS = ("diagnostics", "search")


_GROUPS = {"coreset": "coresets", "matching": "matchers", "dasm": "dasm"}


def register_method(name: str, config_cls: type, kind: str = "matching", description: str = "",
                    group: str | None = None, order: int = 1000, colour: str = "",
                    marker: str = "o",
                    budget_fields: tuple[str, ...] | None = None, diagnostics: str = "",
                    search: str = "",
                    paired_against: tuple[tuple[str, str], ...] = ()) -> Callable[[Distiller], Distiller]:
    """Decorator registering ``fn(request, config) -> SyntheticSet`` under ``name``; ``group``
    (default: from ``kind``), ``order``, ``colour`` and ``marker`` say how reports show it.

    ``budget_fields``: the config's int fields that set how long it distills (``("iterations",)``);
    a budget ladder (:mod:`bench.spec.budget`) multiplies them together. ``diagnostics`` and
    ``search``: ``"module:attribute"`` of the method's figure and sweep hooks (:meth:`MethodSpec.hook`).
    ``paired_against``: ``(reference, label)`` pairs drawn as paired differences in every report
    (``<out>/<name>_difference_<view>.png``)."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of {name!r} must be a dataclass")
    for hook, ref in zip(HOOKS, (diagnostics, search)):
        if ref and (ref.count(":") != 1 or not all(ref.split(":"))):
            raise TypeError(f"{hook} hook of {name!r} must be 'module:attribute', got {ref!r}")

    def wrap(fn: Distiller) -> Distiller:
        doc = description or (fn.__doc__ or name).strip().splitlines()[0]
        if budget_fields is not None:
            names = {f.name for f in dataclasses.fields(config_cls)}
            missing = [f for f in budget_fields if f not in names]
            if missing:
                raise TypeError(f"budget field(s) {missing} of {name!r} are not fields of {config_cls.__name__}")
        _METHODS[name] = MethodSpec(name, fn, config_cls, kind, doc, group or _GROUPS.get(kind, kind),
                                    order, colour, marker,
                                    tuple(budget_fields) if budget_fields is not None else None,
                                    diagnostics, search, tuple((str(r), str(lab)) for r, lab in paired_against))
        return fn

    return wrap


def _import_builtin_methods() -> None:
    # Every module of these packages registers its method on import: adding a method is adding a file.
    for pkg_name in BUILTIN_PACKAGES:
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError:
            continue
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")


def _import_defining_module(name: str) -> None:
    """Import only what registers ``name`` (start-up: a method module pulls in the training stack)."""
    index = builtin_method_index()
    for module in index.opaque_modules:
        importlib.import_module(module)
    if name not in _METHODS and name in index.methods:
        importlib.import_module(index.methods[name].module)


def list_methods() -> dict[str, MethodSpec]:
    _import_builtin_methods()
    return dict(sorted(_METHODS.items()))


def method_summaries() -> dict[str, tuple[str, str]]:
    """``name -> (kind, description)`` of every method, without importing the method modules
    (what ``dasm-bench list`` prints)."""
    index = builtin_method_index()
    for module in index.opaque_modules:
        importlib.import_module(module)
    out = {name: (info.kind, info.description) for name, info in index.methods.items()}
    out.update((name, (spec.kind, spec.description)) for name, spec in _METHODS.items())
    return dict(sorted(out.items()))


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name``; unknown names give a one-line error with close names."""
    if name not in _METHODS:
        _import_defining_module(name)
    if name not in _METHODS:
        raise unknown_name_error("method", name, sorted(set(_METHODS) | set(builtin_method_index().methods)))
    return _METHODS[name]


# ----------------------------------------------------------------------------- configs

def default_config(method: str, dataset: str, ipc: int) -> Any:
    """The method's config for a setting: ``config_cls.for_setting(dataset, ipc)`` when it has one
    (reference defaults at paper scale, short budgets for the embedded CPU datasets). A copy of a
    dataset registered ``settings_as`` another (``cifar10-jpeg``) gets that one's settings."""
    from bench.data.datasets import settings_name

    cls = get_method(method).config_cls
    factory = getattr(cls, "for_setting", None)
    return factory(settings_name(dataset), ipc) if factory else cls()


# ----------------------------------------------------------------------------- running

def distill(method: str, request: DistillRequest, config: Any | None = None,
            overrides: dict[str, Any] | None = None) -> SyntheticSet:
    """Run a registered method and stamp the result's metadata.

    Example::

        syn = distill("herding", DistillRequest(load_dataset("digits"), ipc=1, seed=3))
    """
    spec = get_method(method)
    request.validate()
    if config is None:
        config = default_config(method, request.data.name, request.ipc)
    if overrides:
        config = apply_overrides(config, overrides)
    check = getattr(config, "validate", None)
    if check:
        check()
    start = time.perf_counter()
    syn = spec.fn(request, config)
    seconds = time.perf_counter() - start
    expected = request.ipc * request.data.num_classes
    if len(syn) != expected:
        raise RuntimeError(f"{method} returned {len(syn)} images, expected {expected}")
    if syn.segment_ids is None:
        syn.segment_ids = torch.full((len(syn),), request.segment, dtype=torch.long)
    cfg = config_dict(config)
    split = getattr(request.data, "train_split", "train-val")
    syn.metadata = {
        **syn.metadata,
        "method": method, "dataset": request.data.name, "ipc": request.ipc, "seed": request.seed,
        "config": cfg, "config_hash": distill_key(method, request.data.name, request.ipc, request.seed, config, split),
        # what the method really distilled from: a method that holds part of the split out for its
        # own selections (DASM with SeqMatch's checkpoint choice) records "train-val" itself
        "train_split": syn.metadata.get("train_split", split),
        "code_version": code_version(), "seconds": round(seconds, 3),
        # the protocol the method is evaluated with (DASM's follows its base matcher)
        "eval_protocol": str(getattr(config, "eval_protocol", "dc")),
        "image_size": request.data.image_size, "channels": request.data.channels,
        "num_classes": request.data.num_classes,
    }
    data_sha = request.data.extra.get("sha256")
    if data_sha:  # a dataset read from one identified copy (cifar10-jpeg): which bytes it was
        syn.metadata["data_sha256"] = data_sha
    return syn


def own_protocol(metadata: dict, dataset: str) -> str:
    """The protocol a stored set is evaluated under when none is asked for: the one its method recorded
    (``eval_protocol``), else its method's config default, else ``dc``, then
    :func:`reference_protocol` for ``dataset``. The one resolver of a set's own protocol, shared by
    ``bench.evaluate`` and ``dasm-bench evaluate`` so both train a set the same way.

    Example::

        own_protocol({"method": "dc", "eval_protocol": "dc-nodsa"}, "mnist5k")   # 'dc-aug'
    """
    name = metadata.get("eval_protocol")
    if not name and metadata.get("method"):
        try:
            name = getattr(get_method(str(metadata["method"])).config_cls, "eval_protocol", None)
        except BenchError:  # an imported or foreign set names a method this install lacks
            name = None
    return reference_protocol(str(name or "dc"), dataset)
