"""The .gitignore keeps stored synthetic sets out of git but lets the set pictures in.

``results/**/synthetic/`` (the sets) also matches ``results/<run>/figures/synthetic/`` (the pictures
``dasm-bench plot`` writes); the ``!`` line must re-include the pictures, which git only does when
no parent folder is excluded. Checked in a throw-away repository with the project's .gitignore.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PICTURES = ["results/digits/figures/synthetic/dasm-digits-ipc10-s0-5eb218d6.png",
            "results/digits/figures/synthetic/dasm-digits-ipc10-s0-5eb218d6.pdf",
            "results/digits/dasm/figures/synthetic/seq-digits-ipc1-s0-c1b1dacf.png",   # a nested run
            "results/digits/figures/dasm/dasm-digits-ipc1-s0-174267b2.png"]
SETS = ["results/digits/synthetic/0123abcd.safetensors", "results/digits/synthetic/0123abcd.json",
        "results/digits/dasm/synthetic/4567ef01.safetensors", "results/mine/synthetic/legacy.pt"]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_set_pictures_are_committable_and_sets_are_not(tmp_path):
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    git("init", "-q")
    shutil.copy(ROOT / ".gitignore", tmp_path / ".gitignore")
    for rel in PICTURES + SETS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    status = git("status", "--porcelain", "--ignored", "--untracked-files=all").splitlines()
    untracked = {line[3:] for line in status if line.startswith("?? ")}
    ignored = {line[3:] for line in status if line.startswith("!! ")}
    assert set(PICTURES) <= untracked, sorted(set(PICTURES) - untracked)
    # git lists an ignored folder once, not file by file: every set lies in an ignored folder or is one
    assert all(any(s == i or s.startswith(i) for i in ignored if i.endswith("/") or i == s) for s in SETS), ignored
    assert not set(SETS) & untracked
