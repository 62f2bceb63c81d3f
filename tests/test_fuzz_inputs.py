"""Fuzzing the checking layer (``nas.inputs``) and the config loader: every input is a value in range
or a one-line InputError/ConfigError, never another exception, and nothing blocks on a FIFO."""

from __future__ import annotations

import math
import os
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.config import Config, config_from_dict, load_config
from nas.errors import ConfigError, NasError
from nas.inputs import (
    MAX_SEED,
    InputError,
    check_device,
    check_finite,
    check_int,
    check_name,
    check_output_dir,
    check_output_file,
    check_seed,
    json_loads,
    read_text,
    toml_loads,
)

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _one_line(exc: BaseException) -> None:
    assert str(exc) and "\n" not in str(exc)


_JSONISH = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_subnormal=False), st.text(max_size=10)
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=30,
)


@FUZZ
@given(
    st.one_of(
        st.text(alphabet='[]{}":,0123456789.eE-+ntruefalsNIiy \n', max_size=300),
        st.integers(1, 200).map(lambda n: "[" * n + "]" * n),
    )
)
def test_json_text(text):
    try:
        json_loads(text, "f.json", max_depth=64)
    except InputError as exc:
        _one_line(exc)


@FUZZ
@given(
    st.one_of(
        st.text(alphabet='[]{}"=,.0123456789abnief-+\n #', max_size=300),
        st.integers(1, 200).map(lambda n: "a = " + "[" * n + "]" * n),
    )
)
def test_toml_text(text):
    try:
        toml_loads(text, "f.toml", max_depth=64)
    except InputError as exc:
        _one_line(exc)


def test_deep_and_huge_documents_are_one_line_errors():
    for loads, text in (
        (json_loads, "[" * 100_000 + "]" * 100_000),
        (json_loads, "9" * 5000),
        (toml_loads, "a = " + "[" * 100_000 + "]" * 100_000),
        (toml_loads, "a = " + "9" * 5000),
    ):
        with pytest.raises(InputError, match="nested deeper|too many digits") as exc:
            loads(text, "f")
        _one_line(exc.value)


@FUZZ
@given(
    st.one_of(
        st.floats(allow_subnormal=False), st.integers(-(10**40), 10**40), st.booleans(), st.text(max_size=3), st.none()
    )
)
def test_numbers(value):
    try:
        v = check_finite(value, "--x", lo=0, lo_open=True, hi=1e6)
    except InputError as exc:
        _one_line(exc)
        assert "--x" in str(exc)
    else:
        assert math.isfinite(v) and 0 < v <= 1e6
    try:
        s = check_seed(value)
    except InputError as exc:
        assert "--seed" in str(exc)
    else:
        assert 0 <= s <= MAX_SEED and isinstance(s, int)
    try:
        n = check_int(value, "--n", lo=1)
    except InputError as exc:
        assert "--n" in str(exc)
    else:
        assert n >= 1


@FUZZ
@given(st.text(max_size=20))
def test_names_and_devices(text):
    try:
        assert check_name(text, "--target") == text and text.strip()
    except InputError as exc:
        _one_line(exc)
    try:
        assert check_device(text) in ("cpu", "cuda", "mps") or text.strip().startswith("cuda:")
    except InputError as exc:
        _one_line(exc)


def test_cuda_on_a_cpu_only_torch_is_refused():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch sees a CUDA device")
    for dev in ("cuda", "cuda:0", "cuda:x", "tpu9", "", "cpu:0"):
        with pytest.raises(InputError, match="--device"):
            check_device(dev)
    assert check_device("cpu") == "cpu"


@pytest.mark.parametrize("kind", ["fifo", "dir", "devzero", "missing", "binary", "big"])
def test_read_text_refuses_without_reading(tmp_path, kind):
    p = tmp_path / "f.toml"
    if kind == "fifo":
        os.mkfifo(p)  # never opened: a reader would block forever
    elif kind == "dir":
        p.mkdir()
    elif kind == "devzero":
        p = "/dev/zero"
    elif kind == "binary":
        p.write_bytes(bytes(range(256)))
    elif kind == "big":
        p.write_bytes(b"a" * 2000)
    with pytest.raises(InputError) as exc:
        read_text(p, "config file", max_bytes=1000)
    _one_line(exc.value)


def test_output_paths(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for path, msg in (
        (tmp_path, "is a directory"),
        (f / "x.json", "not a folder"),
        ("", "empty path"),
        ("/dev/null", "not a regular file"),
        (tmp_path / ("n" * 300), "longer than 255"),
    ):
        with pytest.raises(InputError, match=msg):
            check_output_file(path, "-o")
    with pytest.raises(InputError, match="not a folder"):
        check_output_dir(f / "run", "--out")
    with pytest.raises(InputError, match="not a folder"):
        check_output_dir(f, "--out")
    assert check_output_file(tmp_path / "new" / "deeper" / "x.json", "-o").name == "x.json"
    assert f.read_text() == "x"  # nothing written


# ------------------------------------------------------------------------------------------------
# the config loader
# ------------------------------------------------------------------------------------------------

_CONFIG_KEYS = [
    (sec, key)
    for sec, fields in tomllib.loads("""
[project]
output_dir = 1
seed = 1
[search]
target = 1
budget = 1
estimator = 1
coarse_estimator = 1
coarse_trials = 1
fine_trials = 1
trials = 1
tunas_steps = 1
[latency]
tables_dir = 1
threads = 1
runs = 1
sessions = 1
warmup = 1
flush_mib = 1
guard = 1
[supernet]
space = 1
data = 1
resolution = 1
epochs = 1
batch_size = 1
lr = 1
sampler = 1
checkpoint = 1
""").items()
    for key in fields
]
_CONFIG_VALUES = st.one_of(
    st.integers(-5, 5),
    st.integers(-(2**70), 2**70),
    st.floats(allow_subnormal=False),
    st.sampled_from(["", " ", "x", "4ms"]),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_CONFIG_KEYS), _CONFIG_VALUES), max_size=4))
def test_config_values(pairs):
    data: dict = {}
    for (sec, key), value in pairs:
        data.setdefault(sec, {})[key] = value
    try:
        cfg = config_from_dict(data, "nas.toml")
    except ConfigError as exc:
        _one_line(exc)
        assert "nas.toml" in str(exc)
        return
    assert isinstance(cfg, Config)
    assert 0 <= cfg.project.seed <= MAX_SEED and cfg.search.trials >= 1 and cfg.latency.threads >= 1
    assert math.isfinite(cfg.supernet.lr) and cfg.supernet.lr > 0 and cfg.supernet.data.strip()
    assert math.isfinite(cfg.latency.guard) and math.isfinite(cfg.latency.flush_mib)


@pytest.mark.parametrize(
    "text, key",
    [
        ("[project]\nseed = -1\n", "project.seed"),
        ("[project]\nseed = 99999999999999\n", "project.seed"),
        ("[search]\ntrials = 0\n", "search.trials"),
        ("[search]\ntarget = ''\n", "search.target"),
        ("[latency]\nflush_mib = nan\n", "latency.flush_mib"),
        ("[latency]\nguard = inf\n", "latency.guard"),
        ("[supernet]\nlr = inf\n", "supernet.lr"),
        ("[supernet]\nlr = 0.0\n", "supernet.lr"),
        ("[supernet]\ndata = ''\n", "supernet.data"),
        ("[supernet]\nepochs = 0\n", "supernet.epochs"),
    ],
)
def test_config_values_out_of_range(tmp_path, text, key):
    p = tmp_path / "nas.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=key) as exc:
        load_config(p)
    _one_line(exc.value)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_a_nas_toml_that_is_not_a_file_is_refused(tmp_path, kind):
    p = tmp_path / "nas.toml"
    os.mkfifo(p) if kind == "fifo" else p.mkdir()
    with pytest.raises(NasError, match="regular file"):
        load_config(cwd=tmp_path)
