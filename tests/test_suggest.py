"""bench.suggest: every unknown name is one line, with close names or what is known."""

from __future__ import annotations

import pytest

from bench.errors import BenchError
from bench.suggest import suggestion, unknown_name_error


def test_unknown_names_suggest_close_ones_or_list_the_known():
    err = unknown_name_error("method", "dmm", ["dm", "dc", "idc", "random"])
    assert isinstance(err, BenchError) and str(err) == "unknown method 'dmm'; did you mean dm?"
    assert str(unknown_name_error("dataset", "zzz", ["mnist", "digits"], where="s.toml")) == \
        "s.toml: unknown dataset 'zzz'; known: digits, mnist"
    assert suggestion("zzz", ["b", "a"], "fields") == "; fields: a, b"
    assert suggestion("resnt18", ["resnet18", "vgg11"], otherwise="see `dasm-bench list`") == "; did you mean resnet18?"
    assert suggestion("qqq", ["resnet18"], otherwise="see `dasm-bench list`") == "; see `dasm-bench list`"
    assert suggestion("keys", ["key1", "key2", "key3"], n=2).count(",") == 1  # at most n names


def test_the_registries_use_it():
    from bench.methods.registry import get_method
    from bench.train.models import model_name_ok

    with pytest.raises(BenchError) as info:
        get_method("herdin")
    assert str(info.value) == "unknown method 'herdin'; did you mean herding?"
    with pytest.raises(BenchError) as info:
        model_name_ok("convnett")
    assert str(info.value).startswith("unknown architecture 'convnett'; did you mean convnet")
