"""Experiment specs: shipped specs load, every mistake is a one-line error naming the file, a run
expands the spec into exactly its cells."""

from __future__ import annotations

import textwrap

import pytest

from bench.errors import BenchError
from bench.methods.config import distill_key
from bench.methods.registry import list_methods
from bench.run.experiment_run import plan_summary, run_experiment
from bench.spec.cells import eval_key, method_protocol, resolved_config
from bench.spec.experiment import SPECS_DIR, load_spec, resolve_spec_path

BASE = """
name = "t"
dataset = "digits"
ipc = [1, 2]
seeds = [0]
archs = ["convnet"]

[evaluation]
protocol = "dc-nodsa"
epochs = 2
models = 1

[methods.random]
"""


def _write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS_DIR.glob("*.toml")))
def test_shipped_specs_load_with_registered_methods(name):
    warnings = []
    spec = load_spec(name, warn=warnings.append)
    # every method they name is registered now; the only notes are refusals of unpublished settings
    # (MTT above IPC 50 where neither MTT nor DATM publishes values: those cells are skipped)
    unexpected = [w for w in warnings if not w.endswith("those cells are skipped")]
    assert spec.methods and not unexpected, warnings
    refused = {"ipc-saturation-cifar10": ["mtt has no published setting at IPC 100, 200"],
               "ipc-saturation-cifar100": ["mtt has no published setting at IPC 200"]}.get(name, [])
    assert [w.split(": ", 1)[1].split(";")[0] for w in warnings] == refused
    assert set(spec.method_names()) <= set(list_methods())
    assert spec.source == SPECS_DIR / f"{name}.toml"


def test_shipped_specs_cover_the_paper_settings():
    digits = load_spec("ipc-saturation-digits")
    assert digits.dataset == "digits" and max(digits.ipcs) >= 50 and digits.default_out.as_posix() == "results/digits"
    assert {"random", "herding", "kcenter", "forgetting", "dm", "dc", "idc", "dasm", "seq", "hard-only"} <= \
        set(digits.method_names())
    cross = load_spec("cross-arch-digits")
    assert {"resnet18", "vgg11_dc", "convnext_atto", "regnetx_002", "efficientnet_b0", "vit_tiny_patch16_224"} <= \
        set(cross.archs) and any(a.startswith("mobilenetv3") for a in cross.archs) and cross.archs[0] == "convnet"
    # the cross-arch spec reuses the saturation spec's sets: same configs and the same ConvNet cells
    for m in cross.methods:
        sat = next(e for e in digits.methods if e.name == m.name)
        assert (m.overrides, m.protocol) == (sat.overrides, sat.protocol)
    assert (cross.epochs, cross.num_models, cross.protocol, cross.protocols) == (
        digits.epochs, digits.num_models, digits.protocol, digits.protocols)
    for name, dataset in (("ipc-saturation-cifar10", "cifar10"), ("ipc-saturation-cifar100", "cifar100"),
                          ("cross-arch-cifar10", "cifar10")):
        spec = load_spec(name)
        assert spec.dataset == dataset and spec.seeds == [0, 1, 2] and spec.num_models == 5
        assert spec.epochs is None  # the reference's 1000 epochs
        grid = spec.grid()  # each method is evaluated under its own reference protocol
        protocols = {m: method_protocol(grid, m, resolved_config(grid, m, 10)).name for m in spec.method_names()}
        assert protocols["idc"] == protocols["dasm"] == "idc" and protocols["dm"] == "dc"
        assert protocols["mtt"] == "mtt"


@pytest.mark.parametrize("edit, needle", [
    (("[methods.random]", "[methods.randmo]"), "unknown method 'randmo'; did you mean random"),
    (("[methods.random]", "[methods.random]\nlr_img = 3"), "RandomConfig has no field 'lr_img'"),
    (("[methods.random]", "[methods.dm]\niterations = -1"), "iterations must be >= 0"),
    (("[methods.random]", "[methods.random]\nprotocol = \"dcc\""), "unknown evaluation protocol"),
    (('archs = ["convnet"]', 'archs = ["resnet-18"]'), "unknown architecture 'resnet-18'"),
    (('dataset = "digits"', 'dataset = "digitz"'), "unknown dataset 'digitz'"),
    (("ipc = [1, 2]", "ipc = [0]"), "ipc must hold integers >= 1"),
    (("ipc = [1, 2]", "ipc = [1, 1]"), "lists a value twice"),
    (("seeds = [0]", "seed = [0]"), "unknown top-level key 'seed'; did you mean seeds"),
    (("models = 1", "modles = 1"), "unknown [evaluation] key 'modles'"),
    (("models = 1", "models = 0"), "evaluation.models must be a positive integer"),
    (('protocol = "dc-nodsa"', 'protocol = "fast"'), "unknown evaluation protocol 'fast'"),
    (("[methods.random]", "[methods]"), "must name at least one method"),
    (("[methods.random]", ""), "missing required key 'methods'"),
    (("ipc = [1, 2]", "ipc = [1, 2"), "not valid TOML"),
    (("seeds = [0]", 'seeds = [0]\ntrain_split = "val"'), "unknown training split 'val'"),
    (("seeds = [0]", "seeds = [0]\ntrain_split = 1"), "train_split"),
])
def test_bad_specs_fail_up_front_with_one_line(tmp_path, edit, needle):
    path = _write(tmp_path, BASE.replace(*edit))
    with pytest.raises(BenchError) as info:
        load_spec(path)
    message = str(info.value)
    assert needle in message and "\n" not in message and message.startswith("spec.toml: "), message


def test_optional_unregistered_method_is_skipped_with_a_warning(tmp_path):
    warnings = []
    path = _write(tmp_path, BASE + "[methods.not-written-yet]\noptional = true\n")
    spec = load_spec(path, warn=warnings.append)
    assert spec.method_names() == ["random"] and spec.skipped == ["not-written-yet"]
    assert len(warnings) == 1 and "not-written-yet" in warnings[0] and "\n" not in warnings[0]
    # without `optional` the same name is an error, not a silent skip
    with pytest.raises(BenchError, match="unknown method 'not-written-yet'"):
        load_spec(_write(tmp_path, BASE + "[methods.not-written-yet]\n", "strict.toml"))


def test_overrides_and_subset(tmp_path):
    path = _write(tmp_path, BASE + "[methods.dm]\niterations = 3\nprotocol = \"dc\"\n")
    spec = load_spec(path)
    grid = spec.grid()
    assert grid.overrides == {"dm": {"iterations": 3}} and grid.method_protocols == {"dm": "dc"}
    assert resolved_config(grid, "dm", 1).iterations == 3
    assert method_protocol(grid, "dm", resolved_config(grid, "dm", 1)).name == "dc@2ep"
    assert method_protocol(grid, "random", resolved_config(grid, "random", 1)).name == "dc-nodsa@2ep"
    sub = spec.subset(methods=["dm"], ipcs=[2], seeds=[4, 5])
    assert sub.method_names() == ["dm"] and sub.ipcs == [2] and sub.seeds == [4, 5]
    with pytest.raises(BenchError, match="'herding' is not in this spec"):
        spec.subset(methods=["herding"])
    with pytest.raises(BenchError, match="IPC 7 is not in this spec"):
        spec.subset(ipcs=[7])
    with pytest.raises(BenchError, match="architecture 'resnet18' is not in this spec"):
        spec.subset(archs=["resnet18"])
    assert spec.subset(archs=["convnet"]).archs == ["convnet"]


def test_one_training_pool_per_spec_for_every_method_and_the_full_data_line(tmp_path):
    """``train_split = "train-val"``: every cell distils from train-val (its key says so), and the
    full-data line trains on the same pool (issue 25: one pool per table)."""
    from bench.run.full_data_jobs import full_data_jobs
    from bench.spec.cells import cells

    plain = load_spec(_write(tmp_path, BASE))
    pooled = load_spec(_write(tmp_path, BASE.replace("seeds = [0]", 'seeds = [0]\ntrain_split = "train-val"'),
                              "p.toml"))
    assert plain.grid().train_split == "full" and pooled.grid().train_split == "train-val"
    assert {c.key for c in cells(plain.grid())}.isdisjoint(c.key for c in cells(pooled.grid()))
    jobs = full_data_jobs(pooled.grid(), tmp_path / "out", "convnet", "cpu", epochs=2)
    assert jobs and all(job.env.train_split == "train-val" for job in jobs)


def test_resolve_spec_path_by_name_and_unknown_name():
    assert resolve_spec_path("cross-arch-digits") == SPECS_DIR / "cross-arch-digits.toml"
    assert resolve_spec_path("cross-arch-digits.toml") == SPECS_DIR / "cross-arch-digits.toml"
    with pytest.raises(BenchError, match="did you mean cross-arch-digits"):
        resolve_spec_path("cross-arch-digit")


def test_run_experiment_runs_exactly_the_spec_cells_and_reports(tmp_path):
    spec = load_spec(_write(tmp_path, BASE.replace("models = 1", "models = 1\nfull_data_accuracy = 97.5")))
    out = tmp_path / "res"
    df = run_experiment(spec, out, device="cpu", workers=1, progress=False, log=lambda s: None)
    grid = spec.grid()
    expected = set()
    for ipc in (1, 2):
        config = resolved_config(grid, "random", ipc)
        dkey = distill_key("random", "digits", ipc, 0, config)
        expected.add(eval_key(dkey, "convnet", method_protocol(grid, "random", config), 1))
    assert set(df["cell_key"]) == expected and len(df) == 2
    assert (out / "saturation.png").exists() and (out / "saturation.pdf").exists()
    assert "97.5" in (out / "full_data.json").read_text()
    assert len(list((out / "figures" / "synthetic").glob("*.png"))) == 2
    assert "2 sets (2 stored), 2 evaluation cells (2 done)" in plan_summary(spec, out)


def test_cli_run_plan_and_one_line_errors(tmp_path, capsys):
    from bench.cli.main import main

    path = _write(tmp_path, BASE)
    assert main(["run", str(path), "--out", str(tmp_path / "res"), "--plan"]) == 0
    assert "2 sets (0 stored), 2 evaluation cells (0 done)" in capsys.readouterr().out
    for argv, needle in ((["run", "no-such-spec"], "not found"),
                         (["run", str(path), "--methods", "dm"], "'dm' is not in this spec"),
                         (["run", str(_write(tmp_path, BASE.replace("[methods.random]", "[methods.rnd]"), "b.toml"))],
                          "unknown method 'rnd'")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, err
