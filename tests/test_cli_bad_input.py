"""Every bad input, for every subcommand: ONE line ``error: ...`` naming the problem, exit 2, no
compute spent, and no file anywhere in the fixture tree created, changed or lost.

One table, run in one process against one set of fixture files: a new subcommand or option gets
the same treatment by adding a row. ``{name}`` in an argv is a fixture path (see ``fixtures``).
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli.main import main
from bench.store.results import COLUMNS, ResultsTable
from bench.store.synthetic import SyntheticSet

SPEC = """name = "t"
dataset = "digits"
ipc = [1]
seeds = [0]
[evaluation]
epochs = 1
models = 1
[methods.random]
"""

DISTILL = ["distill", "--method", "random", "--ipc", "1", "--no-progress"]

# (id, argv, a substring of the one-line message)
CASES = [
    # --- from issue 11: tracebacks
    ("seed-overflow", DISTILL + ["--seed", "99999999999999999999999", "--out", "{tmp}/n.safetensors"], "seed"),
    ("seed-negative", DISTILL + ["--seed", "-1", "--out", "{tmp}/n.safetensors"], "seed"),
    ("config-list", DISTILL + ["--config", "{config_list}", "--out", "{tmp}/n.safetensors"], "JSON object"),
    ("config-str", DISTILL + ["--config", "{config_str}", "--out", "{tmp}/n.safetensors"], "JSON object"),
    ("config-missing", DISTILL + ["--config", "{tmp}/nope.json"], "cannot read config"),
    ("distill-out-under-file", DISTILL + ["--out", "{afile}/sub/x.safetensors"], "not a directory"),
    ("distill-out-is-dir", DISTILL + ["--out", "{set_dir}"], "it is a directory"),
    ("show-out-under-file", ["show", "{set}", "--out", "{afile}/x.png"], "not a directory"),
    ("evaluate-results-under-file", ["evaluate", "{set}", "--results", "{afile}/res"], "not a directory"),
    ("evaluate-results-is-file", ["evaluate", "{set}", "--results", "{afile}"], "it is a file"),
    ("sidecar-list", ["evaluate", "{set_list}"], "not a dasm-bench synthetic-set sidecar"),
    ("sidecar-no-shapes", ["evaluate", "{set_noshapes}"], "lacks its 'shapes'"),
    ("sidecar-factor-abc", ["evaluate", "{set_factor}"], "factor must be a positive integer"),
    ("sidecar-method-list", ["evaluate", "{set_method_list}"], "metadata 'method' must be a str"),
    ("show-sidecar-list", ["show", "{set_list}"], "not a dasm-bench synthetic-set sidecar"),
    ("negative-label", ["evaluate", "{set_neglabel}"], "labels must be class indices >= 0"),
    ("label-beyond-classes", ["evaluate", "{set_biglabel}"], "exceed the 10 classes"),
    ("evaluate-protocol-abc", ["evaluate", "{set}", "--protocol", "dc@abc"], "expected <protocol>@<N>ep"),
    ("grid-protocol-abc", ["grid", "--methods", "random", "--ipc", "1", "--protocol", "dc@abc", "--out", "{tmp}/g"],
     "expected <protocol>@<N>ep"),
    ("spec-protocol-abc", ["run", "{spec_protocol}", "--out", "{tmp}/r"], "expected <protocol>@<N>ep"),
    ("set-eval-protocol-xyz", ["evaluate", "{set_protocol}"], "'dc@xyz'"),
    ("lr-negative", ["evaluate", "{set}", "--lr", "-1"], "positive finite"),
    ("lr-nan", ["evaluate", "{set}", "--lr", "nan"], "positive finite"),
    ("evaluate-wrong-schema", ["evaluate", "{set}", "--results", "{res_schema}"], "lacks column"),
    ("plot-wrong-schema", ["plot", "{res_schema}"], "lacks column"),
    ("grid-wrong-schema", ["grid", "--methods", "random", "--ipc", "1", "--out", "{res_schema}"], "lacks column"),
    ("grid-methods-empty", ["grid", "--methods", ",", "--ipc", "1", "--out", "{tmp}/g"], "at least one value"),
    ("grid-ipc-empty", ["grid", "--methods", "random", "--ipc", ",", "--out", "{tmp}/g"], "at least one value"),
    ("run-slurm-absent", ["run", "{spec}", "--out", "{tmp}/r", "--executor", "slurm"], "slurm"),
    ("run-threads-negative", ["run", "{spec}", "--out", "{tmp}/r", "--threads", "-1"], "positive integer"),
    # --- from issue 11: silently wrong
    ("epochs-zero", ["evaluate", "{set}", "--epochs", "0"], "positive integer"),
    ("protocol-0ep", ["evaluate", "{set}", "--protocol", "dc-nodsa@0ep"], "epochs must be positive"),
    ("arch-empty", ["evaluate", "{set}", "--arch", ","], "at least one value"),
    ("grid-seed-negative", ["grid", "--methods", "random", "--ipc", "1", "--seeds", "-1", "--out", "{tmp}/g"], "seed"),
    ("evaluate-corrupt-table", ["evaluate", "{set}", "--results", "{res_corrupt}"], "cannot be read"),
    # --- more
    ("ipc-huge", DISTILL[:-3] + ["--ipc", str(10**30), "--out", "{tmp}/n.safetensors"], "up to 100000"),
    ("ipc-beyond-class", DISTILL[:-3] + ["--ipc", "5000", "--out", "{tmp}/n.safetensors"], "smallest class"),
    ("ipc-negative", DISTILL[:-3] + ["--ipc", "-3"], "positive integer"),
    ("ipc-float", DISTILL[:-3] + ["--ipc", "1.5"], "invalid int"),
    ("grid-ipc-zero", ["grid", "--methods", "random", "--ipc", "0", "--out", "{tmp}/g"], "positive integer"),
    ("grid-ipc-twice", ["grid", "--methods", "random", "--ipc", "1,1", "--out", "{tmp}/g"], "twice"),
    ("grid-out-is-file", ["grid", "--methods", "random", "--ipc", "1", "--out", "{afile}"], "it is a file"),
    ("grid-unknown-method", ["grid", "--methods", "nope", "--ipc", "1", "--out", "{tmp}/g"], "unknown method"),
    ("unknown-protocol", ["evaluate", "{set}", "--protocol", "nope"], "unknown evaluation protocol"),
    ("models-zero", ["evaluate", "{set}", "--models", "0"], "positive integer"),
    ("unknown-arch", ["evaluate", "{set}", "--arch", "resnet-18"], "unknown architecture"),
    ("set-missing", ["evaluate", "{tmp}/missing.safetensors"], "does not exist"),
    ("set-is-dir", ["evaluate", "{set_dir}"], "is not a file"),
    ("set-truncated", ["evaluate", "{set_truncated}"], "checksum mismatch"),
    ("set-no-sidecar", ["evaluate", "{set_nosidecar}"], "has no sidecar"),
    ("plot-no-table", ["plot", "{tmp}/nothing"], "no results table"),
    ("plot-corrupt-table", ["plot", "{res_corrupt}"], "cannot be read"),
    ("show-max-per-class-zero", ["show", "{set}", "--max-per-class", "0"], "positive integer"),
    ("distill-unknown-field", DISTILL + ["--set", "nosuchfield=1", "--out", "{tmp}/n.safetensors"], "nosuchfield"),
    ("distill-unknown-device", DISTILL + ["--device", "tpu", "--out", "{tmp}/n.safetensors"], "unknown device"),
    ("spec-bad-types", ["run", "{spec_types}", "--out", "{tmp}/r"], "ipc must"),
    ("spec-epochs-zero", ["run", "{spec_epochs}", "--out", "{tmp}/r"], "positive integer"),
    ("spec-seed-negative", ["run", "{spec_seeds}", "--out", "{tmp}/r"], "seeds must hold integers >= 0"),
    ("spec-not-toml", ["run", "{spec_garbage}", "--out", "{tmp}/r"], "not valid TOML"),
    ("spec-missing", ["run", "{tmp}/nope.toml"], "not found"),
    ("run-workers-zero", ["run", "{spec}", "--out", "{tmp}/r", "--workers", "0"], "positive integer"),
    ("run-seed-huge", ["run", "{spec}", "--out", "{tmp}/r", "--seeds", "99999999999"], "seed"),
    ("run-method-not-in-spec", ["run", "{spec}", "--out", "{tmp}/r", "--methods", "dm"], "not in this spec"),
    ("run-out-under-file", ["run", "{spec}", "--out", "{afile}/r"], "not a directory"),
    ("run-wrong-schema", ["run", "{spec}", "--out", "{res_schema}"], "lacks column"),
    ("sweep-trials-zero", ["sweep", "--ipc", "1", "--trials", "0"], "positive integer"),
    ("sweep-timeout-nan", ["sweep", "--ipc", "1", "--timeout", "nan"], "positive finite"),
    ("sweep-lr-factor-nan", ["sweep", "--ipc", "1", "--lr-factor", "nan"], "finite number"),
    ("sweep-lr-factor-small", ["sweep", "--ipc", "1", "--lr-factor", "0.5"], "lr_factor must be >= 1"),
    ("sweep-out-under-file", ["sweep", "--ipc", "1", "--out", "{afile}/s"], "not a directory"),
    ("unknown-command", ["frobnicate"], "invalid choice"),
    # --- import and compare (issue 14)
    ("import-missing-source", ["import", "{tmp}/nope", "--dataset", "digits", "--out", "{tmp}/i.safetensors"],
     "nope"),
    ("import-pickle-beyond-tensors", ["import", "{afile}", "--format", "dc", "--dataset", "digits",
                                      "--out", "{tmp}/i.safetensors"], "error"),
    ("import-out-under-file", ["import", "{set_dir}", "--dataset", "digits", "--out", "{afile}/i.safetensors"],
     "not a directory"),
    ("import-index-negative", ["import", "{set_dir}", "--dataset", "digits", "--out", "{tmp}/i.safetensors",
                               "--index", "-1"], "index"),
    ("import-iteration-not-mtt", ["import", "{afile}", "--format", "dc", "--dataset", "digits",
                                  "--out", "{tmp}/i.safetensors", "--iteration", "5000"], "--iteration"),
    ("import-zca-image-folder", ["import", "{set_dir}", "--format", "folder", "--dataset", "digits",
                                 "--out", "{tmp}/i.safetensors", "--zca"], "pixels"),
    ("import-ddranking-no-images", ["import", "{set_dir}", "--format", "ddranking", "--dataset", "digits",
                                    "--out", "{tmp}/i.safetensors"], "images.pt"),
    # --- published sets (issue 24)
    ("cost-ipc-zero", ["cost", "--out", "{tmp}/c", "--ipc", "0"], "--ipc"),
    ("cost-eval-ipc-zero", ["cost", "--out", "{tmp}/c", "--eval-ipc", "0"], "--eval-ipc"),
    ("cost-coreset", ["cost", "--out", "{tmp}/c", "--methods", "herding"], "cost times"),
    ("cost-out-is-file", ["cost", "--out", "{afile}"], "it is a file"),
    ("published-missing-root", ["published", "{tmp}/nope", "--dataset", "digits", "--out", "{tmp}/p"], "nope"),
    ("published-empty-root", ["published", "{set_dir}", "--dataset", "digits", "--out", "{tmp}/p"],
     "no published set"),
    ("published-out-is-file", ["published", "{set_dir}", "--dataset", "digits", "--out", "{afile}"], "it is a file"),
    ("published-models-zero", ["published", "{set_dir}", "--dataset", "digits", "--out", "{tmp}/p", "--models", "0"],
     "positive integer"),
    # --- budget ladder (issue 13)
    ("budget-rung-zero", ["budget", "--methods", "dm", "--ipc", "1", "--rungs", "0", "--out", "{tmp}/b"],
     "positive integer"),
    ("budget-unknown-method", ["budget", "--methods", "nope", "--ipc", "1", "--out", "{tmp}/b"], "nope"),
    ("budget-no-budget", ["budget", "--methods", "random", "--ipc", "1", "--out", "{tmp}/b"], "random"),
    ("budget-out-under-file", ["budget", "--methods", "dm", "--ipc", "1", "--out", "{afile}/b"], "not a directory"),
    ("compare-missing-run", ["compare", "{tmp}/nope", "{res_good}"], "nope"),
    ("compare-k-std-negative", ["compare", "{res_good}", "{res_good}", "--k-std", "-1"], "positive finite"),
]


def _write_set(src: Path, dst: Path, edit) -> Path:
    shutil.copy(src, dst)
    side = json.loads(src.with_suffix(".json").read_text())
    dst.with_suffix(".json").write_text(json.dumps(edit(side)))
    return dst


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad_input")
    good = tmp / "good.safetensors"
    assert main(DISTILL + ["--ipc", "2", "--out", str(good)]) == 0
    syn = SyntheticSet.load(good)
    paths = {"tmp": tmp, "set": good}
    paths["set_list"] = _write_set(good, tmp / "list.safetensors", lambda s: [s])
    paths["set_noshapes"] = _write_set(good, tmp / "noshapes.safetensors",
                                       lambda s: {k: v for k, v in s.items() if k != "shapes"})
    paths["set_factor"] = _write_set(good, tmp / "factor.safetensors", lambda s: {**s, "factor": "abc"})
    paths["set_method_list"] = _write_set(good, tmp / "mlist.safetensors",
                                          lambda s: {**s, "metadata": {**s["metadata"], "method": ["x"]}})
    for name, label in (("set_neglabel", -1), ("set_biglabel", 10)):  # valid checksums, bad labels
        bad = SyntheticSet.load(good)
        bad.labels[0] = label
        paths[name] = bad.save(tmp / f"{name}.safetensors")
    with_protocol = SyntheticSet(syn.images, syn.labels, metadata={**syn.metadata, "eval_protocol": "dc@xyz"})
    paths["set_protocol"] = with_protocol.save(tmp / "protocol.safetensors")
    paths["set_dir"] = tmp / "adir.safetensors"
    paths["set_dir"].mkdir()
    (tmp / "adir.json").write_text(good.with_suffix(".json").read_text())
    paths["set_truncated"] = tmp / "trunc.safetensors"
    paths["set_truncated"].write_bytes(good.read_bytes()[:-7])
    shutil.copy(good.with_suffix(".json"), tmp / "trunc.json")
    paths["set_nosidecar"] = tmp / "nosidecar.safetensors"
    shutil.copy(good, paths["set_nosidecar"])

    paths["afile"] = tmp / "a-file"
    paths["afile"].write_text("not a directory\n")
    paths["adir"] = tmp / "a-dir"
    paths["adir"].mkdir()
    paths["config_list"] = tmp / "list.json"
    paths["config_list"].write_text("[1, 2]")
    paths["config_str"] = tmp / "str.json"
    paths["config_str"].write_text('{"config": "abc"}')

    good_res = paths["res_good"] = tmp / "res_good"  # a good table: it survives every case untouched
    good = ResultsTable(good_res)
    good.append([{c: (1 if c in ("ipc", "seed", "num_models") else 50.0 if c.startswith("acc")
                      else 1.0 if c.endswith("seconds") else {"protocol": "dc", "train_split": "full"}.get(c, "x"))
                  for c in COLUMNS}])
    good.consolidate()  # rows live in cells/; the Parquet and CSV are built from them
    paths["res_schema"] = tmp / "res_schema"
    paths["res_schema"].mkdir()
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(paths["res_schema"] / "results.parquet")
    paths["res_corrupt"] = tmp / "res_corrupt"
    # a table written before per-cell storage (a Parquet and no cells/): its Parquet is the record
    paths["res_corrupt"].mkdir()
    shutil.copy(good_res / "results.parquet", paths["res_corrupt"])
    blob = (paths["res_corrupt"] / "results.parquet").read_bytes()
    (paths["res_corrupt"] / "results.parquet").write_bytes(blob[: len(blob) // 2])

    specs = {"spec": SPEC, "spec_protocol": SPEC.replace("epochs = 1", 'epochs = 1\nprotocol = "dc@abc"'),
             "spec_types": SPEC.replace("ipc = [1]", 'ipc = "a"'),
             "spec_epochs": SPEC.replace("epochs = 1", "epochs = 0"),
             "spec_seeds": SPEC.replace("seeds = [0]", "seeds = [-1]"), "spec_garbage": "name = [unclosed\n"}
    for name, text in specs.items():
        paths[name] = tmp / f"{name}.toml"
        paths[name].write_text(text)
    return paths


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def no_compute(monkeypatch):
    """Bad input must be refused before any distillation or evaluation starts."""
    import bench.methods.registry
    import bench.run.jobs
    import bench.run.runner
    import bench.train.evaluation

    # every method module imported before patching: a module first imported while `distill` is
    # patched would keep the patched function (``from bench.methods.registry import distill``) for good
    bench.methods.registry.list_methods()

    def refuse(*args, **kwargs):
        raise AssertionError("compute was spent before the bad input was refused")

    for module, name in ((bench.train.evaluation, "evaluate_synthetic"), (bench.methods.registry, "distill"),
                         (bench.run.jobs, "evaluate_synthetic"), (bench.run.jobs, "distill"),
                         (bench.run.runner, "execute")):
        monkeypatch.setattr(module, name, refuse)


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse usage errors
        return int(exc.code)


@pytest.mark.parametrize("argv, needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(fixtures, no_compute, capsys, argv, needle):
    root = fixtures["tmp"]
    before = _snapshot(root)
    capsys.readouterr()
    code = _run([a.format(**fixtures) for a in argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err, err
    assert needle.lower() in err.lower(), err
    after = _snapshot(root)
    assert after.keys() == before.keys(), f"files created or lost: {sorted(after.keys() ^ before.keys())}"
    assert [k for k in before if before[k] != after[k]] == [], "files changed"


# ----------------------------------------------------------------------------- beyond argv

def test_every_subcommand_has_rows():
    from bench.cli.main import COMMANDS

    covered = {c[1][0] for c in CASES}
    assert set(COMMANDS) - {"list"} <= covered, set(COMMANDS) - covered


def test_os_errors_are_one_line(fixtures, monkeypatch, capsys, tmp_path):
    # a read-only file system or a permission refused mid-write: one line, exit 2
    import bench.store.synthetic

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "x.safetensors"))

    monkeypatch.setattr(bench.store.synthetic, "write_atomically", read_only)
    code = main(DISTILL + ["--out", str(tmp_path / "x.safetensors")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: Read-only file system: {tmp_path / 'x.safetensors'}"


def test_unwritable_directory_refused_before_compute(fixtures, no_compute, monkeypatch, capsys, tmp_path):
    # root bypasses permission bits, so the check's answer is simulated the way a user would see it
    import bench.paths

    monkeypatch.setattr(bench.paths.os, "access", lambda path, mode: False)
    for argv in (DISTILL + ["--out", str(tmp_path / "x.safetensors")],
                 ["evaluate", str(fixtures["set"]), "--results", str(tmp_path / "res")],
                 ["show", str(fixtures["set"]), "--out", str(tmp_path / "p.png")]):
        assert main(argv) == 2
        assert "is not writable" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_corrupt_csv_beside_good_parquet_is_rewritten(fixtures, tmp_path, capsys):
    res = tmp_path / "res"
    shutil.copytree(fixtures["tmp"] / "res_good", res)
    parquet = (res / "results.parquet").read_bytes()
    (res / "results.csv").write_bytes(b"\x00\xff garbage,\n\"unclosed")
    assert main(["plot", str(res)]) == 0
    assert "rewritten" in capsys.readouterr().out
    assert (res / "results.parquet").read_bytes() == parquet
    assert pd.read_csv(res / "results.csv").equals(pd.read_parquet(res / "results.parquet").pipe(
        lambda df: pd.read_csv(__import__("io").StringIO(df.to_csv(index=False)))))


@pytest.mark.parametrize("kwargs, spec_kwargs, needle", [
    ({}, {"seeds": [-1]}, "seeds must be integers >= 0"),
    ({}, {"methods": []}, "at least one of methods"),
    ({}, {"ipcs": []}, "at least one of ipcs"),
    ({"workers": 2, "threads": -1}, {}, "threads must be >= 1"),
])
def test_grid_api_rejects_what_the_cli_rejects(tmp_path, no_compute, kwargs, spec_kwargs, needle):
    from bench.errors import BenchError
    from bench.run.runner import run_grid
    from bench.spec.grid import GridSpec

    spec = GridSpec(**{"methods": ["random"], "dataset": "digits", "ipcs": [1], **spec_kwargs})
    with pytest.raises(BenchError, match=needle):
        run_grid(spec, tmp_path / "g", "cpu", progress=False, **kwargs)
    assert not (tmp_path / "g").exists()
