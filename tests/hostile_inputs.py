"""Hypothesis strategies for hostile input (issue 26), used by tests/test_hostile_properties.py.

Each strategy draws a *description* of a hostile input (plain data: small tensors, JSON edits,
file contents) that starts from a valid one and damages it in one or two places, so an example
gets past the first check and reaches the deeper ones; ``write_*`` turns a description into files.
The values come from ``ODD_NUMBERS`` and ``JSON_VALUES``: the edges of every range in
``bench.bounds`` and the values that break naive code (NaN, inf, -0.0, 2**63, bools, nesting).

Example::

    @given(case=set_cases())
    def test(case, tmp_path):
        path = write_set(case, tmp_path / "s.safetensors")
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

from bench.bounds import MAX_FACTOR, MAX_IPC, MAX_LR, MAX_SEED

DELETE = "<delete>"  # an edit value: remove the key instead of setting it

EDGE_INTS = [0, 1, -1, 2, 10, MAX_FACTOR, MAX_FACTOR + 1, 255, 2**31 - 1, 2**31, MAX_SEED, MAX_SEED + 1, MAX_IPC,
             MAX_IPC + 1, 2**53 + 1, 2**63 - 1, 2**63, 10**30, -(2**63), -(10**30)]
EDGE_FLOATS = [0.0, -0.0, 0.5, 1.0, -1.5, 5e-324, 1e-300, 1e-5, MAX_LR, MAX_LR * (1 + 1e-9), 100.0, 100.00001,
               1e6, 1e16, 3.5e38, 1e308, math.inf, -math.inf, math.nan]
ODD_NUMBERS = st.one_of(st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_FLOATS), st.integers(), st.floats())
SHORT_TEXT = st.one_of(st.sampled_from(["", "digits", "dc", "mtt", "idc", "../..", "/etc/passwd", "a\nb", "NaN",
                                        "1", "$x$", "{}", "\x00"]), st.text(max_size=6))
SCALARS = st.one_of(ODD_NUMBERS, st.booleans(), st.none(), SHORT_TEXT)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(SHORT_TEXT, inner, max_size=3)),
                           max_leaves=6)


# ----------------------------------------------------------------------------- synthetic-set files

@dataclass
class SetCase:
    """A synthetic set on disk: its tensors, byte damage, and edits to its sidecar."""

    tensors: dict[str, torch.Tensor]
    sidecar_edits: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)
    damage: tuple[str, int, int] | None = None   # ("flip", at, xor) | ("truncate", n, 0) | ("append", n, byte)
    resign: bool = False                          # the sidecar's checksum is recomputed after the damage
    sidecar_bytes: bytes | None = None            # the whole sidecar replaced by these bytes


_DTYPES = [torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool]


@st.composite
def _tensor_edit(draw: st.DrawFn, tensors: dict[str, torch.Tensor]) -> None:
    k = tensors["images"].shape[0] if "images" in tensors and tensors["images"].ndim else 0
    kind = draw(st.sampled_from(["images_dtype", "images_shape", "images_value", "labels_value", "labels_dtype",
                                 "labels_shape", "soft_labels", "segment_ids", "drop", "extra", "empty"]))
    if kind == "images_dtype" and "images" in tensors:
        tensors["images"] = tensors["images"].to(draw(st.sampled_from(_DTYPES)))
    elif kind == "images_shape":
        shape = draw(st.lists(st.integers(0, 9), min_size=0, max_size=5))
        tensors["images"] = torch.zeros(shape)
    elif kind == "images_value" and "images" in tensors and tensors["images"].numel():
        # set in float64, then cast: a value beyond the dtype's range becomes inf, as on disk
        images = tensors["images"].double()
        images.view(-1)[draw(st.integers(0, images.numel() - 1))] = draw(st.one_of(st.sampled_from(EDGE_FLOATS),
                                                                                st.floats()))
        tensors["images"] = images.to(draw(st.sampled_from([torch.float32, torch.float64, torch.float16])))
    elif kind == "labels_value" and "labels" in tensors and tensors["labels"].numel():
        labels = tensors["labels"].clone()
        labels.view(-1)[draw(st.integers(0, labels.numel() - 1))] = draw(st.sampled_from([-1, 9, 10, 2**62, -(2**63)]))
        tensors["labels"] = labels
    elif kind == "labels_dtype" and "labels" in tensors:
        tensors["labels"] = tensors["labels"].to(draw(st.sampled_from(_DTYPES + [torch.float32])))
    elif kind == "labels_shape":
        tensors["labels"] = torch.zeros(draw(st.lists(st.integers(0, 12), min_size=0, max_size=3)), dtype=torch.int64)
    elif kind == "soft_labels":
        columns = draw(st.integers(1, 12))
        soft = torch.full((k, columns), 1.0 / columns, dtype=torch.float64)
        if k and draw(st.booleans()):
            soft.view(-1)[draw(st.integers(0, k * columns - 1))] = draw(st.sampled_from(EDGE_FLOATS))
        tensors["labels"] = soft.to(draw(st.sampled_from([torch.float32, torch.float16, torch.float64])))
    elif kind == "segment_ids":
        shape = draw(st.sampled_from([(k,), (k + 1,), (k, 1), ()]))
        tensors["segment_ids"] = torch.zeros(shape, dtype=draw(st.sampled_from([torch.int64, torch.float32])))
    elif kind == "drop":
        tensors.pop(draw(st.sampled_from(["images", "labels"])), None)
    elif kind == "extra":
        tensors[draw(st.sampled_from(["extra", "factor", "__metadata__"]))] = torch.zeros(2)
    elif kind == "empty":
        tensors["images"], tensors["labels"] = torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)


SIDECAR_KEYS = ("format", "format_version", "factor", "sha256", "bytes", "shapes", "dtypes", "metadata")
METADATA_KEYS = ("method", "dataset", "ipc", "seed", "eval_protocol", "syn_lr", "seconds", "config_hash",
                 "train_split", "zca_file", "zca", "config")


@st.composite
def sidecar_edit(draw: st.DrawFn) -> tuple[tuple[str, ...], Any]:
    """One field of a sidecar set to an odd value (or deleted): top level, metadata, or the ZCA record."""
    path = draw(st.one_of(
        st.sampled_from(SIDECAR_KEYS).map(lambda k: (k,)),
        st.sampled_from(METADATA_KEYS).map(lambda k: ("metadata", k)),
        st.tuples(st.sampled_from(["shapes", "dtypes"]), st.sampled_from(["images", "labels"])),
        st.sampled_from(["eps", "space", "fit"]).map(lambda k: ("metadata", "zca", k))))
    if path[-1] in ("eval_protocol",):
        value = draw(st.one_of(st.sampled_from(["dc", "dc-nodsa", "idc", "mtt", "dc@1ep", "dc@0ep", "dc@-1ep",
                                                "dc@99999999999999ep", "dc@1e3ep", "dc-nodsa@lr1e9"]), JSON_VALUES))
    elif path == ("metadata", "zca"):
        value = draw(st.one_of(st.just({"space": "whitened", "eps": 0.1, "fit": "train"}), JSON_VALUES))
    else:
        value = draw(st.one_of(st.just(DELETE), JSON_VALUES))
    return path, value


@st.composite
def set_cases(draw: st.DrawFn, tensor_edits: bool = True) -> SetCase:
    """A valid digits set (1 or 2 images per class) damaged by up to two tensor edits, byte
    damage and sidecar edits; sometimes a sidecar that is not JSON or not an object at all."""
    ipc = draw(st.integers(1, 2))
    tensors = {"images": torch.zeros(10 * ipc, 1, 8, 8), "labels": torch.arange(10 * ipc) % 10}
    for _ in range(draw(st.integers(0, 2)) if tensor_edits else 0):
        draw(_tensor_edit(tensors))
    case = SetCase(tensors, draw(st.lists(sidecar_edit(), max_size=2)))
    if tensor_edits and draw(st.integers(0, 4)) == 3:  # not 0: Hypothesis favours it
        case.damage = draw(st.tuples(st.sampled_from(["flip", "truncate", "append"]), st.integers(0, 4096),
                                     st.integers(1, 255)))
        case.resign = draw(st.booleans())
    if draw(st.integers(0, 9)) == 5:
        case.sidecar_bytes = draw(st.one_of(st.binary(max_size=20), st.just(b"[" * 100_000),
                                            JSON_VALUES.map(lambda v: json.dumps(v).encode())))
    return case


def _apply_edit(root: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = root
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    if value == DELETE:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def write_set(case: SetCase, path: Path) -> Path:
    """The set's .safetensors and .json sidecar as ``SyntheticSet.save`` writes them, then damaged."""
    from safetensors.torch import save as st_save

    tensors = {k: v.contiguous() for k, v in case.tensors.items()}
    blob = st_save(tensors)
    sidecar: dict[str, Any] = {
        "format": "dasm-bench/synthetic-set", "format_version": 1, "factor": 1,
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "dtypes": {k: str(v.dtype).replace("torch.", "") for k, v in tensors.items()},
        "metadata": {"method": "random", "dataset": "digits", "ipc": 1, "seed": 0, "config_hash": "c0ffee"}}
    if case.damage is not None:
        kind, at, byte = case.damage
        data = bytearray(blob)
        if kind == "flip":
            data[at % len(data)] ^= byte
        elif kind == "truncate":
            del data[len(data) - 1 - at % len(data):]
        else:
            data += bytes([byte]) * (at % 64 + 1)
        damaged = bytes(data)
        if case.resign:
            blob = damaged
        else:
            sidecar["sha256"], sidecar["bytes"] = hashlib.sha256(blob).hexdigest(), len(blob)
            blob = damaged
    sidecar.setdefault("sha256", hashlib.sha256(blob).hexdigest())
    sidecar.setdefault("bytes", len(blob))
    for edit_path, value in case.sidecar_edits:
        _apply_edit(sidecar, edit_path, value)
    path.write_bytes(blob)
    path.with_suffix(".json").write_bytes(case.sidecar_bytes if case.sidecar_bytes is not None
                                          else json.dumps(sidecar).encode())
    return path


# ----------------------------------------------------------------------------- results cells

CELL_FIELDS = {"method": "dm", "dataset": "digits", "ipc": 1, "seed": 0, "arch": "convnet", "protocol": "dc",
               "num_models": 1, "acc_last": 50.0, "acc_last_std": 1.0, "acc_best": math.nan, "acc_best_std": math.nan,
               "distill_seconds": 1.0, "eval_seconds": 2.0, "code_version": "v", "config_hash": "h",
               "synthetic_path": "s.safetensors", "train_split": "full"}


@st.composite
def cell_files(draw: st.DrawFn) -> list[tuple[str, bytes]]:
    """1-3 results cells (file name, bytes): valid rows with odd fields, extra fields, keys that
    need hashing, file names that do not match the key, and contents that are not a row."""
    from bench.store.results import cell_file_name

    files = []
    for i in range(draw(st.integers(1, 3))):
        row: dict[str, Any] = {"cell_key": f"k{i}", **CELL_FIELDS, "seed": i}
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.one_of(st.sampled_from(["cell_key", *CELL_FIELDS]), SHORT_TEXT))
            row[key] = draw(st.one_of(st.just(DELETE), JSON_VALUES))
            if row[key] == DELETE:
                del row[key]
        key = row.get("cell_key")
        name = cell_file_name(key) if isinstance(key, str) and key else f"k{i}.json"
        if draw(st.integers(0, 5)) == 3:
            name = draw(st.sampled_from(["other.json", "_sha256-00.json", f"k{i + 1}.json", ".hidden.json"]))
        content = json.dumps(row).encode()
        if draw(st.integers(0, 7)) == 3:
            content = draw(st.one_of(st.binary(max_size=16), JSON_VALUES.map(lambda v: json.dumps(v).encode())))
        files.append((name, content))
    return list(dict(files).items())  # one content per file name: the last written


# ----------------------------------------------------------------------------- experiment specs

BASE_SPEC: dict[str, Any] = {"name": "t", "dataset": "digits", "ipc": [1], "seeds": [0],
                             "evaluation": {"epochs": 1, "models": 1}, "methods": {"random": {}}}
SPEC_PATHS = [("name",), ("dataset",), ("ipc",), ("seeds",), ("archs",), ("out",), ("description",), ("extra",),
              ("evaluation", "epochs"), ("evaluation", "models"), ("evaluation", "protocol"),
              ("evaluation", "protocols"), ("evaluation", "full_data_epochs"), ("evaluation", "full_data_accuracy"),
              ("evaluation", "full_data_arch"), ("runtime", "compile"), ("runtime", "amp"), ("claim", "references"),
              ("claim", "dir"), ("methods", "random", "optional"), ("methods", "dm", "iterations"),
              ("methods", "dm", "lr_img"), ("methods", "dm", "batch_real"), ("methods", "dm", "momentum_img"),
              ("methods", "dc", "lr_net"), ("methods", "dc", "outer_loop"), ("methods", "idc", "factor"),
              ("methods", "dm", "protocol"), ("methods", "nosuch", "x")]
_SPEC_VALUES = st.one_of(
    ODD_NUMBERS, SHORT_TEXT, st.booleans(),
    st.lists(st.one_of(st.sampled_from(EDGE_INTS), st.integers(-5, 2**33)), max_size=4),
    st.sampled_from(["../..", "a/../../b", "./x/../..", "/tmp/x", "~", "a\x00b", " ", "results/x", "dc@0ep",
                     ["convnet", "convnet"], ["nosuch-arch"], ["own", "idc"], {"a": 1}]))


@st.composite
def spec_texts(draw: st.DrawFn) -> str:
    """A TOML spec: the valid base with 1-2 fields set to odd values (or, rarely, not TOML at all)."""
    if draw(st.integers(0, 15)) == 7:
        return draw(st.sampled_from(["name = [unclosed\n", "\x00", "a = 1\na = 2\n", "[[methods]]\n",
                                     "x = " + "[" * 2000 + "]" * 2000 + "\n"]))
    spec = json.loads(json.dumps(BASE_SPEC))
    for _ in range(draw(st.integers(1, 2))):
        _apply_edit(spec, draw(st.sampled_from(SPEC_PATHS)), draw(st.one_of(st.just(DELETE), _SPEC_VALUES)))
    return to_toml(spec)


def _toml_string(text: str) -> str:
    escaped = "".join("\\\\" if c == "\\" else '\\"' if c == '"' else f"\\u{ord(c):04x}"
                      if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text)
    return f'"{escaped}"'


def _toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "_-") for c in key) else _toml_string(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def to_toml(table: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer (tomllib reads only): scalars first, then one header per sub-table; a
    null value is left out (TOML has none)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict) and v is not None]
    for key, sub in table.items():
        if isinstance(sub, dict):
            name = f"{prefix}{_toml_key(key)}"
            lines.append(f"\n[{name}]\n{to_toml(sub, name + '.')}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- image folders to import

def png(size: tuple[int, int], mode: str = "L", value: int = 128, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, value).save(buf, format=fmt)
    return buf.getvalue()


def _bomb_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels and holds none (a decompression bomb)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


_IMAGES = st.one_of(
    st.just(png((8, 8))), st.just(png((8, 8), "RGB")), st.just(png((8, 8), "RGBA")), st.just(png((8, 8), "I;16")),
    st.just(png((8, 8), "P")), st.just(png((8, 8), "1")), st.just(png((8, 8), "L", fmt="JPEG")),
    st.tuples(st.integers(1, 12), st.integers(1, 12)).map(png), st.binary(max_size=24),
    st.just(png((8, 8))[:30]), st.just(_bomb_header(200_000, 200_000)), st.just(_bomb_header(8, 8)))
_FOLDER_NAMES = st.one_of(st.sampled_from([str(i) for i in range(12)] + ["01", "00", "-1", "²", "٣", " 1", "+1",
                                                                        "1e1", "a", ".hidden", "x" * 200]),
                          st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)),
                                  min_size=1, max_size=6).filter(lambda n: n not in (".", "..")))
_FILE_NAMES = st.sampled_from(["a.png", "b.PNG", "c.jpg", "d.jpeg", "e.txt", "noext", ".hidden.png"])


@st.composite
def image_folders(draw: st.DrawFn) -> dict[str, list[tuple[str, bytes | None]]]:
    """Class folder -> [(file name, bytes)]; None bytes: a sub-folder of that name (not a file)."""
    folders: dict[str, list[tuple[str, bytes | None]]] = {}
    for name in draw(st.lists(_FOLDER_NAMES, min_size=0, max_size=3, unique=True)):
        files = draw(st.lists(st.tuples(_FILE_NAMES, st.one_of(_IMAGES, _IMAGES, _IMAGES, st.none())),
                              max_size=3, unique_by=lambda f: f[0]))
        folders[name] = files
    return folders


def write_folder(folders: dict[str, list[tuple[str, bytes | None]]], root: Path) -> Path:
    root.mkdir()
    for name, files in folders.items():
        (root / name).mkdir()
        for file_name, data in files:
            if data is None:
                (root / name / file_name).mkdir()
            else:
                (root / name / file_name).write_bytes(data)
    return root


# ----------------------------------------------------------------------------- command-line text

FLAG_TEXT = st.one_of(
    st.integers().map(str), st.floats().map(repr), st.sampled_from(EDGE_INTS).map(str),
    st.sampled_from(EDGE_FLOATS).map(repr), st.text(max_size=8),
    st.sampled_from(["", " 5", "5 ", "+3", "-0", "0x10", "1_000", "1e3", "1.0", "١", "５", "inf", "-inf", "nan",
                     "NaN", "1e400", "9" * 5000, "1,2", "1,,2", ",", "1,1", "0,1", "\n", "true"]))


# ----------------------------------------------------------------------------- ZCA transform files

def zca_blob(**tensors: torch.Tensor) -> bytes:
    """The bytes ``ZCAWhitening.save`` writes for 8x8 digits (D = 64; identity maps), tensors replaced."""
    from safetensors.torch import save as st_save

    parts = {"mean": torch.zeros(1, 64), "transform": torch.eye(64), "inverse": torch.eye(64), **tensors}
    meta = {"format": "dasm-bench/zca", "eps": str(parts.pop("eps", "0.1")), "space": "pixels in [0, 1]"}
    return st_save({k: v.contiguous() for k, v in parts.items()}, metadata=meta)


@st.composite
def zca_files(draw: st.DrawFn) -> bytes:
    """A ZCA transform file (safetensors) as ``ZCAWhitening.save`` writes it, with a wrong shape,
    dtype, NaN or metadata."""
    from safetensors.torch import save as st_save

    tensors = {"mean": torch.zeros(1, 64), "transform": torch.eye(64), "inverse": torch.eye(64)}
    meta = {"format": "dasm-bench/zca", "eps": "0.1", "space": "pixels in [0, 1]"}
    kind = draw(st.sampled_from(["none", "shape", "dtype", "value", "drop", "eps", "format"]))
    name = draw(st.sampled_from(sorted(tensors)))
    if kind == "shape":
        tensors[name] = torch.zeros(draw(st.lists(st.integers(0, 65), max_size=3)))
    elif kind == "dtype":
        tensors[name] = tensors[name].to(draw(st.sampled_from([torch.float64, torch.float16, torch.int64])))
    elif kind == "value":
        tensors[name].view(-1)[draw(st.integers(0, tensors[name].numel() - 1))] = draw(
            st.sampled_from([math.nan, math.inf, 3e38]))
    elif kind == "drop":
        del tensors[name]
    elif kind in ("eps", "format"):
        meta[kind] = draw(st.sampled_from(["", "nan", "-1", "inf", "abc", "1e400", "0"]))
    if draw(st.integers(0, 9)) == 5:
        return draw(st.sampled_from([b"", b"\x00" * 16, b"garbage"]))
    return st_save({k: v.contiguous() for k, v in tensors.items()}, metadata=meta)
