"""How DASM and its ablations call their base matcher (IDC, DC, DM, ...) through the registry.

The base's config for a segment of ``n`` images per class is
``bench.methods.registry.default_config(base, dataset, n)`` with ``base_overrides`` applied. From the CLI
a dict field arrives as one string, so ``base_overrides`` also accepts ``"k=v;k=v"``::

    dasm-bench distill --method dasm --dataset digits --ipc 10 --set base=dm --set "base_overrides=iterations=20"
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bench.errors import BenchError
from bench.methods.registry import apply_overrides, canonical_overrides, default_config, get_method

DEFAULT_BASE = "idc"  # the paper builds DASM on IDC (gradient matching with multi-formation)


def parse_base_overrides(value: Any) -> dict[str, Any]:
    """``None`` -> {}, a dict -> a copy, ``"iterations=5;lr_img=2"`` -> {"iterations": "5", "lr_img": "2"}.

    String values are coerced to the base config's field types by ``apply_overrides``.
    """
    if value is None:
        return {}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, str):
        out: dict[str, Any] = {}
        for item in (p.strip() for p in value.split(";")):
            if not item or item.lower() == "none":
                continue
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                raise BenchError(f"base_overrides expects 'key=value;key=value', got {value!r}")
            out[key.strip()] = val.strip()
        return out
    raise BenchError(f"base_overrides must be a dict or 'key=value;key=value', got {type(value).__name__}")


def check_base(base: str, base_overrides: dict[str, Any]) -> None:
    """One-line errors for an unknown base, a DASM-kind base (no nesting) or an unknown override field."""
    spec = get_method(base)
    if spec.kind == "dasm":
        raise BenchError(f"base {base!r} is itself a DASM variant; use a matcher or coreset method as base")
    names = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(canonical_overrides(spec.config_cls, base_overrides)) - names)  # old names count
    if unknown:
        raise BenchError(f"base_overrides field(s) {', '.join(unknown)} not in {spec.config_cls.__name__}; "
                         f"fields: {', '.join(sorted(names)) or '(none)'}")


def base_config(base: str, dataset: str, ipc: int, base_overrides: dict[str, Any]) -> Any:
    """The base's config for distilling ``ipc`` images per class on ``dataset``, overrides applied."""
    config = default_config(base, dataset, ipc)
    return apply_overrides(config, base_overrides) if base_overrides else config


def base_eval_protocol(base: str) -> str:
    """The evaluation protocol the base's results are reported under (IDC -> "idc"; else "dc")."""
    return str(getattr(get_method(base).config_cls, "eval_protocol", "dc"))


class BaseEvalProtocol:
    """Descriptor: ``config.eval_protocol`` is the base's protocol (read by the grid runner).

    On the class itself (``DASMConfig.eval_protocol``, as ``dasm-bench evaluate`` reads it) it is
    the default base's. Not a dataclass field: it follows ``base`` and cannot disagree with it.
    """

    def __get__(self, obj: Any, owner: type) -> str:
        return base_eval_protocol(DEFAULT_BASE if obj is None else obj.base)


@dataclass
class BaseMatcherConfig:
    """The fields every config that runs a base matcher starts with (DASM, ``seq``, ``dasm-reverse``,
    ``hard-only``): ``base`` and its ``base_overrides`` (a dict, or ``"k=v;k=v"`` from the CLI), and
    ``eval_protocol`` following the base. Subclasses add their own fields after these two.
    """

    base: str = DEFAULT_BASE
    base_overrides: dict[str, Any] = field(default_factory=dict)

    eval_protocol = BaseEvalProtocol()  # the base's protocol; not a field, it follows `base`

    def __post_init__(self) -> None:
        # the CLI hands a dict field over as one "k=v;k=v" string (apply_overrides leaves it as is)
        self.base_overrides = parse_base_overrides(self.base_overrides)

    def validate(self) -> None:
        check_base(self.base, self.base_overrides)
