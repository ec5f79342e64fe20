"""One config vocabulary (``arch``, ``init``, ``momentum_img``, ``dsa_strategy="auto"``) with the old
names kept as aliases, and config hashes / cell keys that do not move with the rename."""

from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.methods.config import distill_key
from bench.methods.registry import (
    DSA_REFERENCE,
    apply_overrides,
    canonical_overrides,
    config_dict,
    config_hash,
    default_config,
    get_method,
)

# config_hash(config_dict(default_config(method, dataset, ipc))) computed before the fields were
# renamed (DC/IDC model -> arch, DC dsa_strategy "" -> "auto", DM/MTT momentum -> momentum_img,
# MTT pix_init -> init): a rename that leaked into the hash payload would move these.
PINNED_HASHES = {
    ("dc", "digits", 10): "7a15a06c9260a546",
    ("dsa", "cifar10", 10): "e3ddc59dc986dc90",
    ("idc", "cifar10", 50): "f67e67f8cd98e5d8",
    ("dm", "digits", 10): "680909ffcbe6376e",
    ("mtt", "cifar10", 1): "513bc8b683670505",
    ("mtt", "digits", 10): "0fcc10677df7c5aa",
}

# (method, the old spelling, the same setting in the current vocabulary); applied to a config whose
# dsa_strategy is "none", so that the reference-strategy sentinel is a change too
RENAMES = [
    ("dc", {"model": "convnet_bn"}, {"arch": "convnet_bn"}),
    ("dc", {"dsa_strategy": ""}, {"dsa_strategy": DSA_REFERENCE}),
    ("dsa", {"model": "convnet_bn", "dsa_strategy": ""}, {"arch": "convnet_bn", "dsa_strategy": "auto"}),
    ("idc", {"model": "convnet_d2"}, {"arch": "convnet_d2"}),
    ("dm", {"momentum": 0.9}, {"momentum_img": 0.9}),
    ("mtt", {"pix_init": "noise", "momentum": 0.4}, {"init": "noise", "momentum_img": 0.4}),
]


def _start(method):
    config = default_config(method, "digits", 10)
    return apply_overrides(config, {"dsa_strategy": "none"}) if hasattr(config, "dsa_strategy") else config


@pytest.mark.parametrize("setting", sorted(PINNED_HASHES))
def test_default_configs_hash_as_before_the_rename(setting):
    assert config_hash(config_dict(default_config(*setting))) == PINNED_HASHES[setting]


@pytest.mark.parametrize("method,old,new", RENAMES)
def test_old_and_new_names_give_the_same_config_and_the_same_hash(method, old, new):
    base = _start(method)
    via_old, via_new = apply_overrides(base, old), apply_overrides(base, new)
    assert via_old == via_new
    assert via_new != base  # the override really changed something
    assert config_hash(config_dict(via_old)) == config_hash(config_dict(via_new))
    assert distill_key(method, "digits", 10, 0, via_old) == distill_key(method, "digits", 10, 0, via_new)
    # the payload keeps the old spelling, so it is what it was before the rename
    payload = config_dict(via_new)
    for key, value in old.items():
        assert payload[key] == value


def test_payload_uses_only_the_old_names():
    dc = config_dict(default_config("dc", "digits", 10))
    assert dc["model"] == "convnet" and "arch" not in dc and dc["dsa_strategy"] == ""
    mtt = config_dict(default_config("mtt", "digits", 10))
    assert "pix_init" in mtt and "init" not in mtt and "momentum" in mtt and "momentum_img" not in mtt
    assert default_config("dc", "digits", 10).arch == "convnet"  # the field itself has the new name


def test_both_spellings_at_once_is_a_one_line_error():
    with pytest.raises(BenchError, match="old name of 'arch'"):
        apply_overrides(default_config("dc", "digits", 1), {"model": "convnet", "arch": "convnet_bn"})


def test_an_old_sentinel_is_only_translated_where_it_meant_the_reference():
    # DC's "" meant the reference strategy; DM's "" always meant no augmentation and stays so
    assert canonical_overrides(get_method("dc").config_cls, {"dsa_strategy": ""}) == {"dsa_strategy": "auto"}
    assert apply_overrides(default_config("dm", "digits", 1), {"dsa_strategy": ""}).dsa_strategy == ""


def test_dasm_base_overrides_accept_old_names():
    from dasm.base_matcher import base_config

    config = apply_overrides(default_config("dasm", "digits", 4), {"base": "dc", "base_overrides": "model=convnet_bn"})
    config.validate()
    assert base_config("dc", "digits", 2, config.base_overrides).arch == "convnet_bn"
    with pytest.raises(BenchError, match="not in DCConfig"):
        apply_overrides(config, {"base_overrides": "modle=convnet_bn"})
