import pandas as pd

from bench.runner import GridSpec, run_grid


def test_grid_runs_reuses_sets_and_skips_done_cells(tmp_path):
    spec = GridSpec(methods=["random"], dataset="digits", ipcs=[1, 2], seeds=[0, 1], archs=["convnet"],
                    protocol="dc-nodsa", epochs=2, num_models=1)
    df = run_grid(spec, tmp_path, device="cpu", progress=False, log=lambda s: None)
    assert len(df) == 4 and set(df["ipc"]) == {1, 2}
    sets = sorted((tmp_path / "synthetic").glob("*.safetensors"))
    assert len(sets) == 4
    stamp = [p.stat().st_mtime_ns for p in sets]
    # adding an architecture reuses the stored sets and only evaluates the new cells
    spec.archs = ["convnet", "convnet_bn"]
    df2 = run_grid(spec, tmp_path, device="cpu", progress=False, log=lambda s: None)
    assert len(df2) == 8 and len(df2["cell_key"].unique()) == 8
    assert [p.stat().st_mtime_ns for p in sets] == stamp
    df3 = run_grid(spec, tmp_path, device="cpu", progress=False, log=lambda s: None)
    pd.testing.assert_frame_equal(df2, df3)
