"""Start-up cost of `dasm-bench list` and bad-input errors: nothing imported that they do not use.

Timings live in tests/benchmarks (test_cli_startup); here the import sets are checked, which is
deterministic: the heavy packages (timm, torchvision, pandas, matplotlib, optuna, the method modules)
stay out of `list` and of an unknown-method error.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bench.methods.index import builtin_method_index
from bench.methods.registry import list_methods, method_summaries

HEAVY = ("timm", "torchvision", "pandas", "matplotlib", "optuna", "torch._dynamo", "baselines.dc", "dasm.difficulty")


def _imported_after(argv: list[str], tmp_path) -> tuple[int, set[str], str]:
    code = ("import sys\nfrom bench.cli.main import main\nrc = main(sys.argv[1:])\n"
            "print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr)\nsys.exit(rc)\n")
    env = {**os.environ, "DASM_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    modules = set(proc.stderr.split("MODULES", 1)[1].split()) if "MODULES" in proc.stderr else set()
    return proc.returncode, modules, proc.stderr.split("MODULES", 1)[0]


def test_index_read_from_source_matches_the_registered_methods():
    summaries = method_summaries()
    registered = list_methods()           # imports every method module
    assert set(builtin_method_index().methods) == set(registered)
    assert summaries == {name: (spec.kind, spec.description) for name, spec in registered.items()}
    assert builtin_method_index().methods["dm"].module == "baselines.dm"


def test_list_and_unknown_method_import_nothing_heavy(tmp_path):
    # first run fills the timm-names cache (imports timm), the second reads it
    rc, first, _ = _imported_after(["list"], tmp_path)
    assert rc == 0 and "timm" in first
    assert list(tmp_path.glob("timm-models-*.txt"))
    rc, second, _ = _imported_after(["list"], tmp_path)
    assert rc == 0
    assert not [m for m in HEAVY if m in second], sorted(m for m in HEAVY if m in second)
    rc, err_mods, err = _imported_after(["distill", "--method", "dmm", "--ipc", "1"], tmp_path)
    assert rc == 2 and err.strip() == "error: unknown method 'dmm'; did you mean dm?"
    assert not [m for m in HEAVY if m in err_mods], sorted(m for m in HEAVY if m in err_mods)


def test_cached_timm_names_are_timms(tmp_path, monkeypatch):
    import timm

    from bench.train import models

    monkeypatch.setenv("DASM_CACHE", str(tmp_path))
    models._timm_names.cache_clear()
    try:
        assert models._timm_names() == tuple(timm.list_models())          # written
        models._timm_names.cache_clear()
        assert models._timm_names() == tuple(timm.list_models())          # read back
        assert models.list_architectures("resnet1*")[len(models.list_architectures("nothing-matches")):] \
            == timm.list_models("resnet1*")
    finally:
        models._timm_names.cache_clear()
