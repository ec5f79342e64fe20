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
per class); the caller joins segments with ``SyntheticSet.concat``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib
import json
import pkgutil
import time
import typing
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import Tensor

from bench.data import Dataset
from bench.errors import BenchError
from bench.synthetic import SyntheticSet
from bench.version import code_version


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

    def pool_indices(self, c: int) -> Tensor:
        """Training-split indices of class ``c`` that this request allows."""
        return self.data.train.indices_by_class[c] if self.pool is None else self.pool[c]

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
    # int config fields that set the distillation budget, scaled together by a budget ladder
    # (bench.budget_curves); None: the method has no budget to scale (coresets)
    budget_fields: tuple[str, ...] | None = None


_METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type, kind: str = "matching", description: str = "",
                    budget_fields: tuple[str, ...] | None = None) -> Callable[[Distiller], Distiller]:
    """Decorator registering ``fn(request, config) -> SyntheticSet`` under ``name``.

    ``budget_fields``: the config's int fields that set how long it distills (``("iterations",)``);
    a budget ladder multiplies them together."""
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of {name!r} must be a dataclass")

    def wrap(fn: Distiller) -> Distiller:
        doc = description or (fn.__doc__ or name).strip().splitlines()[0]
        if budget_fields is not None:
            names = {f.name for f in dataclasses.fields(config_cls)}
            missing = [f for f in budget_fields if f not in names]
            if missing:
                raise TypeError(f"budget field(s) {missing} of {name!r} are not fields of {config_cls.__name__}")
        _METHODS[name] = MethodSpec(name, fn, config_cls, kind, doc,
                                    tuple(budget_fields) if budget_fields is not None else None)
        return fn

    return wrap


def _import_builtin_methods() -> None:
    # Every module of these packages registers its method on import: adding a method is adding a file.
    for pkg_name in ("baselines", "dasm"):
        try:
            pkg = importlib.import_module(pkg_name)
        except ModuleNotFoundError:
            continue
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{pkg_name}.{mod.name}")


def list_methods() -> dict[str, MethodSpec]:
    _import_builtin_methods()
    return dict(sorted(_METHODS.items()))


def get_method(name: str) -> MethodSpec:
    """The registered method called ``name``; unknown names give a one-line error with close names."""
    _import_builtin_methods()
    if name not in _METHODS:
        close = difflib.get_close_matches(name, list(_METHODS), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(_METHODS))}"
        raise BenchError(f"unknown method {name!r}{hint}")
    return _METHODS[name]


# ----------------------------------------------------------------------------- configs

def default_config(method: str, dataset: str, ipc: int) -> Any:
    """The method's config for a setting: ``config_cls.for_setting(dataset, ipc)`` when it has one
    (reference defaults at paper scale, short budgets for the embedded CPU datasets)."""
    cls = get_method(method).config_cls
    factory = getattr(cls, "for_setting", None)
    return factory(dataset, ipc) if factory else cls()


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    if isinstance(annotation, str):
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, annotation)
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and args:
        if value is None or (isinstance(value, str) and value.lower() == "none"):
            return None
        return _coerce(value, args[0], key)
    try:
        if annotation is bool and isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if annotation in (int, float, str, bool):
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return annotation(value)
        if origin in (tuple, list) and isinstance(value, str):
            inner = args[0] if args else str
            items = [v for v in value.replace("[", "").replace("]", "").replace("(", "").replace(")", "").split(",") if v.strip()]
            return origin(_coerce(v.strip(), inner, key) for v in items)
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            return origin(value)
    except (TypeError, ValueError):
        raise BenchError(f"config field {key!r} expects {getattr(annotation, '__name__', annotation)}, got {value!r}") from None
    return value


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of ``config`` with fields replaced (values may be strings from the CLI)."""
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; fields: {', '.join(sorted(names))}"
            raise BenchError(f"{type(config).__name__} has no field {key!r}{hint}")
        changes[key] = _coerce(value, hints.get(key, type(value)), key)
    new = dataclasses.replace(config, **changes)
    check = getattr(new, "validate", None)
    if check:
        check()
    return new


def config_dict(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_hash(payload: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration (sorted JSON)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    syn.metadata = {
        **syn.metadata,
        "method": method, "dataset": request.data.name, "ipc": request.ipc, "seed": request.seed,
        "config": cfg, "config_hash": config_hash({"method": method, "dataset": request.data.name,
                                                   "ipc": request.ipc, "seed": request.seed, "config": cfg}),
        "code_version": code_version(), "seconds": round(seconds, 3),
        # the protocol the method is evaluated with (DASM's follows its base matcher)
        "eval_protocol": str(getattr(config, "eval_protocol", "dc")),
        "image_size": request.data.image_size, "channels": request.data.channels,
        "num_classes": request.data.num_classes,
    }
    return syn
