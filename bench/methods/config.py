"""Method configs: field overrides (from specs, ``--set`` and Python), the shared vocabulary with
its old names, and the hash payload that keys every stored set and result cell.

A method's config is a dataclass (see :mod:`bench.methods.registry`). This module knows nothing about
which methods exist: it works on any config dataclass.

Example::

    config = apply_overrides(DCConfig(), {"iterations": "20", "model": "convnet_bn"})  # old name: alias of arch
    key = config_hash(config_dict(config))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from typing import Any

from bench.bounds import MAX_CONFIG_FLOAT, MAX_CONFIG_INT, check_int, check_number
from bench.errors import BenchError
from bench.suggest import suggestion
from bench.train.loop import DSA_REFERENCE  # noqa: F401 (part of the config vocabulary)


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
            if annotation in (int, float) and isinstance(value, bool):  # JSON/TOML true is no count or rate
                raise ValueError(value)
            return annotation(value)
        if origin in (tuple, list) and isinstance(value, str):
            inner = args[0] if args else str
            items = [v for v in value.replace("[", "").replace("]", "").replace("(", "").replace(")", "").split(",")
                     if v.strip()]
            return origin(_coerce(v.strip(), inner, key) for v in items)
        if origin in (tuple, list) and isinstance(value, (list, tuple)):
            return origin(value)
    except (TypeError, ValueError):
        raise BenchError(f"config field {key!r} expects {getattr(annotation, '__name__', annotation)}, "
                         f"got {value!r}") from None
    return value


def _in_range(value: Any, key: str) -> Any:
    """Every number given to a config (``--set``, a spec, ``--config``) is finite and of a size no
    method uses beyond (the method's own ``validate`` then checks its meaning): 1e308 as a learning
    rate would overflow the optimizer, 10**30 as a count would overflow torch's int64 arithmetic."""
    if isinstance(value, (list, tuple)):
        return type(value)(_in_range(v, key) for v in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        return check_int(value, f"config field {key!r}", -MAX_CONFIG_INT, MAX_CONFIG_INT)
    return check_number(value, f"config field {key!r}", -MAX_CONFIG_FLOAT, MAX_CONFIG_FLOAT)


# ----------------------------------------------------------------------------- one vocabulary
# Method configs share one vocabulary: ``arch`` (the network), ``init`` (how the synthetic images
# start), ``momentum_img`` (the images' SGD momentum), ``dsa_strategy = "auto"`` (DSA_REFERENCE:
# the reference strategy for the dataset). A field renamed into it declares its past on its class:
#
#     LEGACY_NAMES: ClassVar[dict[str, str]] = {"model": "arch"}                 old name -> field
#     LEGACY_VALUES: ClassVar[dict[str, dict]] = {"dsa_strategy": {"": "auto"}}  field: old value -> value
#
# and the past is honoured in exactly two places, both here:
# - canonical_overrides (used by apply_overrides and DASM's base_overrides check): specs, --set and
#   base_overrides written with an old name or value keep working, silently;
# - config_dict, the hash payload of distill_key and of distill()'s metadata: it writes the OLD
#   names and values, so a config hashes to what it hashed to before the rename and no cell key
#   or committed result moves. (The metadata's "config" therefore uses the old names too.)

# DSA_REFERENCE ("auto"), the dsa_strategy value for the reference strategy, is defined in bench.train.loop


def _legacy_names(config_cls: type) -> dict[str, str]:
    return dict(getattr(config_cls, "LEGACY_NAMES", None) or {})


def _legacy_values(config_cls: type) -> dict[str, dict[Any, Any]]:
    return {k: dict(v) for k, v in (getattr(config_cls, "LEGACY_VALUES", None) or {}).items()}


def canonical_overrides(config_cls: type, overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` in the current vocabulary: old field names and old sentinel values translated.

    Example::

        canonical_overrides(DCConfig, {"model": "convnet_bn", "dsa_strategy": ""})
        # {'arch': 'convnet_bn', 'dsa_strategy': 'auto'}
    """
    names, values = _legacy_names(config_cls), _legacy_values(config_cls)
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        field_name = names.get(key, key)
        if field_name in out:
            raise BenchError(f"{config_cls.__name__}: {key!r} is the old name of {field_name!r}; give only one of them")
        mapping = values.get(field_name, {})
        if isinstance(value, str) and value in mapping:
            value = mapping[value]
        out[field_name] = value
    return out


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """A copy of ``config`` with fields replaced (values may be strings from the CLI; old field
    names and values are accepted, see :func:`canonical_overrides`)."""
    hints = typing.get_type_hints(type(config))
    names = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for key, value in canonical_overrides(type(config), overrides).items():
        if key not in names:
            raise BenchError(f"{type(config).__name__} has no field {key!r}{suggestion(key, names, 'fields')}")
        changes[key] = _in_range(_coerce(value, hints.get(key, type(value)), key), key)
    new = dataclasses.replace(config, **changes)
    check = getattr(new, "validate", None)
    if check:
        check()
    return new


def config_dict(config: Any) -> dict[str, Any]:
    """The hash payload of a config: its fields as JSON values, renamed fields under their OLD
    names and sentinels with their OLD values (see "one vocabulary" above), so cell keys and
    config hashes do not change when a field is renamed.

    Example::

        config_dict(DCConfig())["model"]   # 'convnet' (the field is DCConfig.arch)
    """
    payload = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    cls = type(config)
    for name, mapping in _legacy_values(cls).items():
        old_value = {new: old for old, new in mapping.items()}
        if name in payload and isinstance(payload[name], str) and payload[name] in old_value:
            payload[name] = old_value[payload[name]]
    old_name = {new: old for old, new in _legacy_names(cls).items()}
    return {old_name.get(key, key): value for key, value in payload.items()}


def config_hash(payload: dict[str, Any]) -> str:
    """Stable short hash of a resolved configuration (sorted JSON)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def split_payload(payload: dict[str, Any], train_split: str) -> dict[str, Any]:
    """A hash payload that names the training split unless it is the legacy ``"train-val"``, so
    keys of train-val runs stay what they were and full-training-set runs get new ones."""
    return payload if train_split == "train-val" else {**payload, "train_split": train_split}


def distill_key(method: str, dataset: str, ipc: int, seed: int, config: Any, train_split: str = "full") -> str:
    """A synthetic set's content key (the one formula: the grid keys its sets and a distillation
    records its ``config_hash`` with it); it names the training split unless that is the legacy
    ``"train-val"``.

    Example::

        distill_key("dm", "digits", 10, 0, default_config("dm", "digits", 10))   # 16 hex digits
    """
    return config_hash(split_payload({"method": method, "dataset": dataset, "ipc": ipc, "seed": seed,
                                      "config": config_dict(config)}, train_split))
