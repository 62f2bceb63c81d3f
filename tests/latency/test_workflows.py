from __future__ import annotations

import pytest

from nas.errors import NasError
from nas.latency import plan_profile, table_keys
from nas.spec import arch_keys
from nas.zoo import get_spec, resolve


def test_table_keys_cover_extra_models():
    arch = get_spec("mnv4-conv-small", resolution=160)
    keys = table_keys([], [arch], zoo=False)
    assert set(keys) == set(arch_keys(arch))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "pixel8-edgetpu"}, "can be profiled here"),
        ({"target": "host-cpu", "calib": -1}, "--calib must be >= 0"),
        ({"target": "host-cpu", "zoo": False}, "nothing to profile"),
    ],
)
def test_profile_plan_checks_before_any_work(kwargs, message, tmp_path):
    with pytest.raises(NasError, match=message):
        plan_profile(tables_dir=tmp_path, **kwargs)


def test_resolve_zoo_name_and_arch_string():
    spec, name = resolve("mnv4-conv-small")
    assert name == "mnv4-conv-small" and resolve(spec.arch) == (spec, "arch")
    with pytest.raises(NasError, match="neither a zoo model"):
        resolve("no-such-model")
