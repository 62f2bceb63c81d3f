"""Fuzzing checkpoint metadata and few-shot manifests: a checkpoint whose metadata has one field
replaced is either read and usable (its space rebuilds, its data reloads) or a one-line NasError
naming the field; a manifest likewise. Non-regular files are refused unread."""

from __future__ import annotations

import copy
import json
import os
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.errors import NasError
from nas.space import space_meta
from nas.supernet._checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    check_meta,
    load_checkpoint,
    space_from_meta,
)
from nas.supernet._few_shot import read_manifest

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def meta(hybrid_space) -> dict:
    return {
        "space": json.loads(json.dumps(space_meta(hybrid_space))),
        "resolution": 32,
        "num_classes": 2,
        "classes": ["a", "b"],
        "data": {
            "spec": "builtin:4",
            "val_fraction": 0.1,
            "split_seed": 0,
            "train_images": 8,
            "val_images": 2,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.2, 0.2, 0.2],
        },
        "config": {"seed": 0, "sampler": "sandwich", "lr": 0.002},
        "epochs_done": 1,
        "history": [{"epoch": 0, "loss": 1.0}],
        "world_size": 1,
        "budget": None,
        "init_from": None,
    }


PATHS = [
    ("space",),
    ("space", "definition"),
    ("space", "phase"),
    ("space", "fixed_widths"),
    ("resolution",),
    ("num_classes",),
    ("classes",),
    ("data",),
    ("data", "spec"),
    ("data", "val_fraction"),
    ("data", "split_seed"),
    ("data", "mean"),
    ("config",),
    ("config", "seed"),
    ("config", "sampler"),
    ("config", "lr"),
    ("epochs_done",),
    ("history",),
    ("world_size",),
    ("budget",),
    ("init_from",),
    ("space", "definition", "stages"),
    ("space", "definition", "resolution"),
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_subnormal=False),
    st.text(max_size=6),
    st.lists(st.integers(-2, 50), max_size=3),
    st.just({}),
    st.just([[8, 1]]),
    st.sampled_from(["joint", "coarse", "fine"]),
)


@FUZZ
@given(st.sampled_from(PATHS), VALUES, st.booleans())
def test_checkpoint_metadata_with_a_field_replaced(meta, path, value, delete):
    m = copy.deepcopy(meta)
    d = m
    for k in path[:-1]:
        d = d[k]
    if delete:
        d.pop(path[-1], None)
    else:
        d[path[-1]] = value
    try:
        check_meta(m, "ck.pt")
        sp = space_from_meta(m["space"])  # what every reader does next
    except NasError as exc:
        assert str(exc).startswith("ck.pt: ") and "\n" not in str(exc)
        return
    assert sp.name and m["resolution"] >= 1 and len(m["classes"]) == m["num_classes"]


@pytest.mark.parametrize(
    "kind", ["fifo", "dir", "devzero", "garbage", "truncated", "pickle", "list", "meta-not-json", "meta-int"]
)
def test_unreadable_checkpoints(tmp_path, meta, kind):
    p = tmp_path / "ck.pt"
    good = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": json.dumps(meta), "model": {}}
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "devzero":
        p = "/dev/zero"
    elif kind == "garbage":
        p.write_bytes(bytes(range(256)) * 16)
    elif kind == "truncated":
        torch.save(good, p)
        p.write_bytes(p.read_bytes()[:300])
    elif kind == "pickle":
        p.write_bytes(pickle.dumps(os.getcwd))  # a callable: weights_only refuses it
    elif kind == "list":
        torch.save([1, 2], p)
    else:
        torch.save({**good, "meta": "not json" if kind == "meta-not-json" else 5}, p)
    with pytest.raises(NasError) as exc:
        load_checkpoint(p)
    assert "\n" not in str(exc.value)


def test_a_good_checkpoint_reads(tmp_path, meta):
    p = tmp_path / "ck.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": json.dumps(meta), "model": {}}, p)
    assert load_checkpoint(p)["meta"]["resolution"] == 32


MANIFEST_VALUES = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.just([{"label": "x", "checkpoint": "../x.pt"}]),
    st.just([{"label": "x", "checkpoint": "x.pt"}]),
)


@FUZZ
@given(st.sampled_from(["format", "version", "split", "space", "shots", "init_from"]), MANIFEST_VALUES)
def test_manifests_with_a_field_replaced(tmp_path_factory, meta, key, value):
    m = {
        "format": "mnv4-nas few-shot supernet",
        "version": 1,
        "split": "stage0.channels",
        "space": meta["space"],
        "shots": [{"label": "stage0.channels=16", "checkpoint": "few.stage0.channels=16.pt"}],
        "init_from": None,
    }
    m[key] = value
    p = tmp_path_factory.mktemp("m") / "few.json"
    p.write_text(json.dumps(m))
    try:
        got = read_manifest(p)
    except NasError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(got["space"]["definition"], dict) and got["shots"]
