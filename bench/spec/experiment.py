"""Experiment specs: one TOML file says what a paper table or figure needs, the runner does the rest.

A spec names a dataset, the methods (each with config overrides), the IPC grid, the seeds, the
evaluation architectures and the evaluation protocol. It is validated completely when loaded
(unknown keys, methods, config fields, architectures or protocols are one-line errors), so a
typo never surfaces hours into a run. Only the checks that need the data itself (IPC against the
smallest class) wait for the run.

Example spec (``bench/specs/ipc-saturation-digits.toml`` is a real one)::

    name = "ipc-saturation-digits"
    dataset = "digits"
    ipc = [1, 5, 10]
    seeds = [0, 1, 2]
    archs = ["convnet"]

    [evaluation]
    protocol = "own"         # each method's own (config.eval_protocol, else "dc"); "default" is read the same
    # or: protocols = ["own", "idc"]: every set under its own protocol AND under idc; random
    # (and the full-data reference) under every protocol that appears
    epochs = 300             # CPU budget; leave out for the protocol's own
    models = 2
    full_data_epochs = 100   # or full_data_accuracy = 84.8 (a published number)

    [methods.random]
    [methods.dm]
    iterations = 100         # any field of the method's config
    [methods.idc]
    protocol = "idc"         # this method's own evaluation protocol
    [methods.dasm]
    optional = true          # skipped with a warning while the method is not registered

    [runtime]                # speed only, never in a cell's key (bench/train/acceleration.py)
    amp = "bf16"             # bf16 autocast of evaluation training, CUDA runs only (off on CPU)
    channels_last = true     # CUDA runs only
    compile = "auto"         # torch.compile the evaluation step: auto | on | off

Example use::

    spec = load_spec("ipc-saturation-digits")          # a name in bench/specs/ or a path
    grid = spec.grid()                                 # -> bench.spec.grid.GridSpec
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import tomllib

from bench.bounds import MAX_COUNT, MAX_EPOCHS, MAX_IPC, MAX_MODELS, MAX_SEED
from bench.errors import BenchError
from bench.files import read_regular
from bench.paths import safe_slug
from bench.suggest import suggestion, unknown_name_error
from bench.vocabulary import OWN_PROTOCOL, normalise_protocol

SPECS_DIR = Path(__file__).parent.parent / "specs"

_TOP_KEYS = {"name", "description", "dataset", "ipc", "seeds", "archs", "out", "evaluation", "methods", "runtime",
             "claim", "train_split"}
_CLAIM_KEYS = {"references", "dir"}
_EVAL_KEYS = {"protocol", "protocols", "epochs", "models", "full_data_epochs", "full_data_accuracy", "full_data_arch"}
_METHOD_RESERVED = {"optional", "protocol"}


@dataclass(frozen=True)
class MethodEntry:
    """One method of a spec: its registered name, the config fields it overrides and, optionally,
    its own evaluation protocol (e.g. "idc" for IDC-based methods while the rest use "dc")."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    optional: bool = False
    protocol: str | None = None


@dataclass
class ExperimentSpec:
    """A validated experiment: methods x IPC x seeds on one dataset, evaluated on ``archs``."""

    name: str
    dataset: str
    methods: list[MethodEntry]
    ipcs: list[int]
    seeds: list[int]
    archs: list[str]
    protocol: str = OWN_PROTOCOL
    protocols: list[str] = field(default_factory=list)  # ["own", "idc"]: a grid axis (see GridSpec)
    epochs: int | None = None
    num_models: int = 5
    full_data_epochs: int | None = None      # train on the whole training split for the dashed line
    full_data_accuracy: float | None = None  # or a published full-data accuracy (%)
    full_data_arch: str | None = None        # default: the first evaluation architecture
    description: str = ""
    out: str | None = None                   # default results directory
    skipped: list[str] = field(default_factory=list)  # optional methods not registered (yet)
    source: Path | None = None
    # [runtime]: speed options (bench.train.acceleration: compile, amp, channels_last), never part of a cell key
    runtime: dict[str, Any] = field(default_factory=dict)
    # [claim]: paired differences to these methods, written to <out>/<dir> (bench/report/claim.py)
    claim_references: list[str] = field(default_factory=list)
    claim_dir: str = "claim"
    # the training pool of every method and of the full-data line (bench.data.datasets): "full" or "train-val"
    train_split: str = "full"

    @property
    def default_out(self) -> Path:
        return Path(self.out or f"results/{safe_slug(self.dataset)}")

    def method_names(self) -> list[str]:
        return [m.name for m in self.methods]

    def subset(self, methods: list[str] | None = None, ipcs: list[int] | None = None,
               seeds: list[int] | None = None, archs: list[str] | None = None) -> "ExperimentSpec":
        """The same spec restricted to some of its methods / IPCs / architectures (``seeds`` may be
        any list). The kept cells have the same keys as in the whole spec, so parts add up."""
        where = self.source.name if self.source else self.name
        names = _pick(self.method_names(), methods, lambda m: f"{where}: method {m!r} is not in this spec (it has ")
        chosen_ipcs = _pick(self.ipcs, ipcs, lambda i: f"{where}: IPC {i} is not in this spec's grid (")
        chosen_archs = _pick(self.archs, archs, lambda a: f"{where}: architecture {a!r} is not in this spec (")
        entries = [m for m in self.methods if m.name in names]
        if seeds is not None:
            _check_int_list(seeds, "seeds", where, minimum=0, maximum=MAX_SEED)
        return dataclasses.replace(self, methods=entries, ipcs=chosen_ipcs, archs=chosen_archs,
                                   seeds=list(seeds) if seeds is not None else self.seeds)

    def grid(self, data_root: str | None = None, download: bool = False) -> Any:
        """The :class:`bench.spec.grid.GridSpec` the runner executes."""
        from bench.spec.grid import GridSpec

        return GridSpec(methods=self.method_names(), dataset=self.dataset, ipcs=list(self.ipcs),
                        seeds=list(self.seeds), archs=list(self.archs), protocol=self.protocol,
                        epochs=self.epochs, num_models=self.num_models,
                        overrides={m.name: dict(m.overrides) for m in self.methods if m.overrides},
                        method_protocols={m.name: m.protocol for m in self.methods if m.protocol},
                        protocols=list(self.protocols), data_root=data_root, download=download,
                        train_split=self.train_split)

    def count_cells(self) -> tuple[int, int]:
        """(synthetic sets to distill, evaluation cells) of the full grid."""
        from bench.spec.cells import cells

        sets = len(self.methods) * len(self.ipcs) * len(self.seeds)
        return sets, sum(1 for _ in cells(self.grid()))


def _pick(available: list[Any], chosen: list[Any] | None, unknown: Callable[[Any], str]) -> list[Any]:
    """``available`` restricted to ``chosen`` (in ``available``'s order); all of it when nothing is
    chosen. A chosen value the spec lacks is an error: ``unknown(value)`` + the values it has."""
    if not chosen:
        return list(available)
    for value in chosen:
        if value not in available:
            raise BenchError(f"{unknown(value)}{', '.join(map(str, available))})")
    return [v for v in available if v in chosen]


def resolve_spec_path(name_or_path: str | Path) -> Path:
    """A path to a spec file, or the name of a shipped spec (``bench/specs/<name>.toml``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SPECS_DIR / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if shipped.is_file():
        return shipped
    known = sorted(p.stem for p in SPECS_DIR.glob("*.toml"))
    raise BenchError(f"experiment spec {str(name_or_path)!r} not found{suggestion(path.stem, known, 'shipped specs')}")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def load_spec(name_or_path: str | Path, warn: Callable[[str], None] = _warn) -> ExperimentSpec:
    """Read and validate a spec; every problem is a one-line :class:`BenchError` naming the file.

    Example::

        spec = load_spec("bench/specs/cross-arch-digits.toml")
    """
    path = resolve_spec_path(name_or_path)
    try:
        raw = tomllib.loads(read_regular(path, "experiment spec").decode())
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path.name}: not valid TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise BenchError(f"{path.name}: nested too deeply to be an experiment spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path.name}: cannot be read: {exc}") from None
    except ValueError as exc:  # an integer of 5,000 digits: int() refuses it (sys.int_max_str_digits)
        raise BenchError(f"{path.name}: not valid TOML: {str(exc).splitlines()[0]}") from None
    return parse_spec(raw, where=path.name, warn=warn, source=path)


def parse_spec(raw: dict[str, Any], where: str = "spec", warn: Callable[[str], None] = _warn,
               source: Path | None = None) -> ExperimentSpec:
    """Validate a spec given as a dict (the parsed TOML)."""
    from bench.data.datasets import list_datasets

    _check_keys(raw, _TOP_KEYS, where, "top-level key")
    for key in ("dataset", "ipc", "methods"):
        if key not in raw:
            raise BenchError(f"{where}: missing required key {key!r}")
    dataset = _expect(raw["dataset"], str, "dataset", where)
    datasets = list_datasets()
    if dataset not in datasets:
        raise unknown_name_error("dataset", dataset, datasets, where)
    ipcs = _check_int_list(raw["ipc"], "ipc", where, minimum=1, maximum=MAX_IPC)
    # a seed beyond MAX_SEED would reach the cells and leave the results table unreadable
    seeds = _check_int_list(raw.get("seeds", [0]), "seeds", where, minimum=0, maximum=MAX_SEED)
    archs = raw.get("archs", ["convnet"])
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise BenchError(f"{where}: archs must be a non-empty list of architecture names")
    if len(set(archs)) != len(archs):
        raise BenchError(f"{where}: archs lists an architecture twice")

    evaluation = raw.get("evaluation", {})
    if not isinstance(evaluation, dict):
        raise BenchError(f"{where}: [evaluation] must be a table")
    _check_keys(evaluation, _EVAL_KEYS, where, "[evaluation] key")
    protocol = normalise_protocol(_expect(evaluation.get("protocol", OWN_PROTOCOL), str, "evaluation.protocol", where))
    protocols = _parse_protocols(evaluation, where)
    epochs = _optional_positive_int(evaluation.get("epochs"), "evaluation.epochs", where)
    models = _optional_positive_int(evaluation.get("models", 5), "evaluation.models", where, MAX_MODELS)
    full_epochs = _optional_positive_int(evaluation.get("full_data_epochs"), "evaluation.full_data_epochs", where)
    full_acc = evaluation.get("full_data_accuracy")
    if full_acc is not None and (isinstance(full_acc, bool) or not isinstance(full_acc, (int, float))
                                 or not 0 <= full_acc <= 100):
        raise BenchError(f"{where}: evaluation.full_data_accuracy must be a percentage, got {full_acc!r}")
    if full_epochs is not None and full_acc is not None:
        raise BenchError(f"{where}: give full_data_epochs (compute) or full_data_accuracy (published), not both")
    full_arch = evaluation.get("full_data_arch")
    if full_arch is not None:
        _expect(full_arch, str, "evaluation.full_data_arch", where)

    spec = ExperimentSpec(
        name=_non_empty(_expect(raw.get("name", source.stem if source else "experiment"), str, "name", where),
                        "name", where),
        description=_expect(raw.get("description", ""), str, "description", where),
        dataset=dataset, methods=[], ipcs=ipcs, seeds=seeds, archs=list(archs), protocol=protocol,
        protocols=protocols, epochs=epochs, num_models=models or 5, full_data_epochs=full_epochs,
        full_data_accuracy=None if full_acc is None else float(full_acc), full_data_arch=full_arch,
        out=raw.get("out"), source=source,
    )
    if "train_split" in raw:
        from bench.data.datasets import check_train_split

        spec.train_split = _expect(raw["train_split"], str, "train_split", where)
        try:
            check_train_split(spec.train_split)
        except BenchError as exc:
            raise BenchError(f"{where}: {exc}") from None
    if "runtime" in raw:
        from bench.train.acceleration import parse_runtime

        spec.runtime = parse_runtime(raw["runtime"], where)
    if spec.out is not None:
        _check_out(_expect(spec.out, str, "out", where), where)
    spec.methods, spec.skipped = _parse_methods(raw["methods"], spec, where, warn)
    if "claim" in raw:
        _parse_claim(raw["claim"], spec, where)
    _check_runnable(spec, where)
    return spec


def _parse_claim(table: Any, spec: ExperimentSpec, where: str) -> None:
    """``[claim] references = ["idc", "seq"]``, ``dir = "claim"`` (a plain name under the run's out)."""
    if not isinstance(table, dict):
        raise BenchError(f"{where}: [claim] must be a table")
    _check_keys(table, _CLAIM_KEYS, where, "[claim] key")
    refs = table.get("references")
    if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
        raise BenchError(f"{where}: claim.references must be a non-empty list of the spec's methods")
    for ref in refs:
        if ref not in spec.method_names():
            raise unknown_name_error("claim reference", ref, spec.method_names(), where)
    name = _expect(table.get("dir", "claim"), str, "claim.dir", where)
    if safe_slug(name) != name or name in (".", ".."):
        raise BenchError(f"{where}: claim.dir must be a plain directory name under the run's out, got {name!r}")
    spec.claim_references, spec.claim_dir = list(refs), name

    try:
        claim_protocol(spec)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from None


def _parse_protocols(evaluation: dict[str, Any], where: str) -> list[str]:
    from bench.protocols import get_protocol
    from bench.vocabulary import OWN_PROTOCOL as OWN

    if "protocols" not in evaluation:
        return []
    if "protocol" in evaluation:
        raise BenchError(f"{where}: give evaluation.protocol or evaluation.protocols, not both")
    names = evaluation["protocols"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BenchError(f"{where}: evaluation.protocols must be a non-empty list such as [\"own\", \"idc\"]")
    if len(set(names)) != len(names):
        raise BenchError(f"{where}: evaluation.protocols lists a protocol twice ({names})")
    names = [normalise_protocol(n) for n in names]
    if len(set(names)) != len(names):
        raise BenchError(f"{where}: evaluation.protocols lists each method's own protocol twice ({names})")
    for name in names:
        if name != OWN:
            try:
                get_protocol(name)
            except BenchError as exc:
                raise BenchError(f"{where}: evaluation.protocols: {exc}; or \"{OWN}\" for each method's own") from None
    return list(names)


def _parse_methods(table: Any, spec: ExperimentSpec, where: str,
                   warn: Callable[[str], None]) -> tuple[list[MethodEntry], list[str]]:
    from bench.methods.registry import apply_overrides, default_config, list_methods

    if not isinstance(table, dict) or not table:
        raise BenchError(f"{where}: [methods] must name at least one method, e.g. [methods.random]")
    registered = list_methods()
    entries, skipped = [], []
    for name, body in table.items():
        if not isinstance(body, dict):
            raise BenchError(f"{where}: [methods.{name}] must be a table of config overrides")
        optional = body.get("optional", False)
        if not isinstance(optional, bool):
            raise BenchError(f"{where}: methods.{name}.optional must be true or false")
        if name not in registered:
            if optional:
                warn(f"{where}: method {name!r} is not registered yet; skipping it{suggestion(name, registered)}")
                skipped.append(name)
                continue
            raise unknown_name_error("method", name, registered, where)
        overrides = {k: v for k, v in body.items() if k not in _METHOD_RESERVED}
        protocol = body.get("protocol")
        if protocol is not None:
            from bench.protocols import get_protocol

            try:
                get_protocol(_expect(protocol, str, f"methods.{name}.protocol", where), spec.epochs)
            except BenchError as exc:
                raise BenchError(f"{where}: [methods.{name}] {exc}") from None
        refused = []
        for ipc in spec.ipcs:  # for_setting may differ per IPC: every resolved config must validate
            config = default_config(name, spec.dataset, ipc)
            if getattr(config, "no_reference", "") and "no_reference" not in overrides:
                refused.append(ipc)  # no published setting: the runner skips these cells (bench.run.runner)
                continue
            try:
                apply_overrides(config, overrides)
            except BenchError as exc:
                raise BenchError(f"{where}: [methods.{name}] at IPC {ipc}: {exc}") from None
        if refused:
            warn(f"{where}: {name} has no published setting at IPC {', '.join(map(str, refused))}; "
                 "those cells are skipped")
        entries.append(MethodEntry(name, overrides, optional, protocol))
    if not entries:
        raise BenchError(f"{where}: none of the spec's methods is registered ({', '.join(skipped)})")
    return entries, skipped


def _check_runnable(spec: ExperimentSpec, where: str) -> None:
    from bench.protocols import get_protocol
    from bench.train.models import model_name_ok

    for arch in spec.archs + ([spec.full_data_arch] if spec.full_data_arch else []):
        try:
            model_name_ok(arch)
        except BenchError as exc:
            raise BenchError(f"{where}: {exc}") from None
    if spec.protocol != OWN_PROTOCOL:
        try:
            get_protocol(spec.protocol, spec.epochs)
        except BenchError as exc:
            raise BenchError(f"{where}: {exc}") from None


def claim_protocol(spec: ExperimentSpec) -> str:
    """The one protocol every method of the claim is evaluated under (its cells' protocol name)."""
    from bench.protocols import get_protocol

    shared = [p for p in (spec.protocols or [spec.protocol]) if normalise_protocol(p) != OWN_PROTOCOL]
    if len(shared) != 1:
        raise BenchError(f"{spec.name}: a claim needs exactly one shared evaluation protocol "
                         f"(evaluation.protocol = \"idc\"), got {spec.protocols or [spec.protocol]}")
    return get_protocol(shared[0], spec.epochs).name


# ----------------------------------------------------------------------------- small checks

def _non_empty(value: str, key: str, where: str) -> str:
    if not value.strip():
        raise BenchError(f"{where}: {key} must not be empty (leave it out for the file's name)")
    return value


def _check_keys(table: dict[str, Any], allowed: set[str], where: str, what: str) -> None:
    for key in table:
        if key not in allowed:
            raise unknown_name_error(what, key, sorted(allowed), where, listing="allowed", n=2)


def _expect(value: Any, kind: type, key: str, where: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise BenchError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


def _check_out(out: str, where: str) -> None:
    """A spec's ``out`` is a relative path that stays inside the working directory: a shared or
    downloaded spec cannot send its writes elsewhere (``--out`` on the command line can, since the
    person running it typed it)."""
    path = Path(out)
    # a NUL (TOML's "\u0000") is no path at all: every file call on it raises ValueError
    if not out.strip() or "\x00" in out or path.is_absolute() or os.path.normpath(path).split(os.sep)[0] == "..":
        raise BenchError(f"{where}: out must be a relative path inside the working directory, got {out!r}; "
                         "pass --out to write elsewhere")


def _check_int_list(values: Any, key: str, where: str, minimum: int, maximum: int = MAX_COUNT) -> list[int]:
    if not isinstance(values, list) or not values:
        raise BenchError(f"{where}: {key} must be a non-empty list of integers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
            raise BenchError(f"{where}: {key} must hold integers >= {minimum} (in [{minimum}, {maximum}]), got {v!r}")
    if len(set(values)) != len(values):
        raise BenchError(f"{where}: {key} lists a value twice ({values})")
    return list(values)


def _optional_positive_int(value: Any, key: str, where: str, maximum: int = MAX_EPOCHS) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BenchError(f"{where}: {key} must be a positive integer (in [1, {maximum}]), got {value!r}")
    return value

