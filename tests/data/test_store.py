"""Distillation stores: format, resumable writer, streaming reader, mixing by ratio, one-line errors."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from nas.data import (
    DistillStore,
    MixedSource,
    StoreError,
    StoreWriter,
    TrainSource,
    data_identity,
    is_store,
    load_data,
    load_training_data,
    mix_stores,
    open_store,
    parse_store_arg,
)
from nas.errors import NasError

RES = 16


@pytest.fixture(scope="module")
def ds():
    return load_data("builtin:4", RES)  # 40 training images, 10 classes


def _settings(ds, replicas: int, shard_size: int, **kw) -> dict:
    return {
        "teacher": {"kind": "test", "source": "synthetic"},
        "data": data_identity(ds, "builtin:4", 0.1, 0),
        "aug": "none",
        "replicas": replicas,
        "seed": 0,
        "shard_size": shard_size,
        "batch_size": 8,
        "probs_dtype": "float16",
        **kw,
    }


def _shard(ds, k: int, shard_size: int, total: int, tag: int) -> dict[str, torch.Tensor]:
    """Shard k of a synthetic store: pixel (0, 0) holds the example's position (2 bytes) and ``tag``."""
    pos = torch.arange(k * shard_size, min(total, (k + 1) * shard_size))
    n, n_train = len(pos), len(ds.train_y)
    g = torch.Generator().manual_seed(k)
    images = torch.randint(0, 256, (n, 3, ds.resolution, ds.resolution), dtype=torch.uint8, generator=g)
    images[:, 0, 0, 0], images[:, 1, 0, 0], images[:, 2, 0, 0] = pos // 256, pos % 256, tag
    probs = torch.distributions.Dirichlet(torch.ones(10)).sample((n,))
    index = pos % n_train
    return {
        "images": images,
        "probs": probs.to(torch.float16),
        "labels": ds.train_y[index],
        "index": index,
        "replica": pos // n_train,
    }


def write_store(path: Path, ds, replicas: int = 3, shard_size: int = 25, tag: int = 0, upto: int | None = None) -> Path:
    total = len(ds.train_y) * replicas
    count = math.ceil(total / shard_size)
    with StoreWriter(path, _settings(ds, replicas, shard_size), examples=total, num_shards=count) as w:
        for k in range(count if upto is None else upto):
            w.write_shard(k, _shard(ds, k, shard_size, total, tag))
        w.finish()
    return path


def _positions(x: torch.Tensor) -> list[int]:
    b = (x[:, :2, 0, 0] * 255).round().long()
    return (b[:, 0] * 256 + b[:, 1]).tolist()


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def store(tmp_path_factory, ds) -> Path:
    return write_store(tmp_path_factory.mktemp("s") / "store", ds)


def test_a_store_is_a_train_source_with_its_sources_identity(store, ds):
    s = open_store(store)
    assert isinstance(s, TrainSource) and is_store(store)
    assert s.classes == ds.classes and s.resolution == RES and s.mean == ds.mean and s.std == ds.std
    assert s.train_size() == 120 and len(s.shards) == 5
    ident = s.identity()
    assert ident["kind"] == "distill-store" and ident["examples"] == 120 and json.dumps(ident)
    assert "120 examples" in s.describe()


def test_an_epoch_reads_every_example_once_also_across_ranks(store):
    s = open_store(store, buffer_shards=2)
    one = [p for b in s.epoch_batches(3, 7) for p in _positions(b.x)]
    assert len(one) == 119 and len(set(one)) == 119  # 17 full batches of 7; the last partial one is dropped
    chunks = [p for c in s.stream(3) for p in _positions(c[0].float() / 255)]
    assert sorted(chunks) == list(range(120)) and chunks != sorted(chunks)
    assert one == chunks[:119]
    assert [p for b in s.epoch_batches(3, 7) for p in _positions(b.x)] == one  # same seed, same order
    assert [p for b in s.epoch_batches(4, 7) for p in _positions(b.x)] != one
    ranks = [[p for c in s.stream(3, rank=r, world=2) for p in _positions(c[0].float() / 255)] for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 60 and sorted(ranks[0] + ranks[1]) == list(range(120))
    per_rank = [sum(len(b.y) for b in s.epoch_batches(3, 8, rank=r, world=2)) for r in range(2)]
    assert per_rank == [56, 56]


def test_batches_hold_the_stored_values(store):
    from safetensors.torch import load_file

    s = open_store(store, buffer_shards=1)
    b = next(iter(s.epoch_batches(0, 10)))
    assert (
        b.x.dtype == torch.float32 and b.x.shape == (10, 3, RES, RES) and 0 <= float(b.x.min()) <= float(b.x.max()) <= 1
    )
    assert b.soft is not None and b.soft.dtype == torch.float32 and b.y.dtype == torch.int64
    raw = {}
    for k in range(5):
        t = load_file(store / f"shard-{k:05d}.safetensors")
        for i, p in enumerate(_positions(t["images"].float() / 255)):
            raw[p] = (t["images"][i], t["probs"][i], t["labels"][i])
    for i, p in enumerate(_positions(b.x)):
        img, probs, label = raw[p]
        assert torch.equal((b.x[i] * 255).round().to(torch.uint8), img)
        assert torch.equal(b.soft[i], probs.float()) and int(b.y[i]) == int(label)


def test_mixing_by_ratio_sets_each_batchs_composition(tmp_path, store, ds):
    small = write_store(tmp_path / "b", ds, replicas=1, shard_size=16, tag=255)  # 40 examples
    mix = mix_stores([(store, 1), (small, 3)])
    assert isinstance(mix, MixedSource) and mix.train_size() == 160
    batches = list(mix.epoch_batches(0, 8))
    assert len(batches) == 20
    from_small = [int((b.x[:, 2, 0, 0] > 0.5).sum()) for b in batches]
    assert from_small == [6] * 20  # 3/4 of every batch; the small store is read 3 times over
    uneven = list(mix_stores([(store, 1), (small, 2)]).epoch_batches(0, 8))
    counts = [int((b.x[:, 2, 0, 0] > 0.5).sum()) for b in uneven]
    assert set(counts) <= {5, 6} and abs(sum(counts) - 160 * 2 / 3) < 1
    ranks = [list(mix.epoch_batches(0, 8, rank=r, world=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 10
    # the mixture's statistics: both stores come from the same data, so they are the data's
    assert np.allclose(mix.mean, ds.mean) and np.allclose(mix.std, ds.std, atol=1e-6)
    assert mix_stores([(store, 2.0)]).train_size() == 120  # one store is the store itself


def test_stores_in_a_mix_must_agree(tmp_path, store):
    other = write_store(tmp_path / "o", load_data("builtin:4", 24), replicas=1, shard_size=40)
    with pytest.raises(StoreError, match="resolution"):
        mix_stores([(store, 1), (other, 1)])
    with pytest.raises(NasError, match="ratio"):
        mix_stores([(store, 1), (store, float("nan"))])


@pytest.mark.parametrize(
    "arg, msg",
    [
        (":-1", "must be > 0"),
        (":abc", "is not a ratio"),
        (":0", "must be > 0"),
        (":nan", "finite"),
        (":inf", "finite"),
        (":", "is not a ratio"),
    ],
)
def test_bad_store_ratios_are_one_line_errors(store, arg, msg):
    with pytest.raises(NasError, match=msg) as e:
        parse_store_arg(f"{store}{arg}")
    assert "\n" not in str(e.value) and "--distill" in str(e.value)


def test_store_arguments(tmp_path, store):
    assert parse_store_arg(f"{store}:0.7") == (store, 0.7)
    assert parse_store_arg(str(store)) == (store, 1.0)
    colon = tmp_path / "a:b"
    colon.mkdir()
    assert parse_store_arg(str(colon)) == (colon, 1.0)
    assert parse_store_arg(f"{colon}:2") == (colon, 2.0)


@pytest.mark.parametrize("case", ["flipped byte", "truncated", "missing", "bad probs", "wrong dtype"])
def test_a_corrupt_shard_is_a_one_line_error_naming_it(tmp_path, ds, case):
    path = write_store(tmp_path / "s", ds)
    shard = path / "shard-00001.safetensors"
    if case == "flipped byte":
        b = bytearray(shard.read_bytes())
        b[-5] ^= 0xFF
        shard.write_bytes(bytes(b))
    elif case == "truncated":
        shard.write_bytes(shard.read_bytes()[:100])
    elif case == "missing":
        shard.unlink()
    else:
        from safetensors.torch import load_file

        t = load_file(shard)
        if case == "bad probs":
            t["probs"] = (t["probs"].float() * 2).to(torch.float16)
        else:
            t["probs"] = t["probs"].float()
        save_file(t, shard)
        m = json.loads((path / "manifest.json").read_text())
        m["shards"][1].update(sha256=hashlib.sha256(shard.read_bytes()).hexdigest(), bytes=shard.stat().st_size)
        (path / "manifest.json").write_text(json.dumps(m))
    before = _hashes(path)
    s = open_store(path, buffer_shards=1)
    with pytest.raises(StoreError, match="shard-00001.safetensors") as e:
        for _ in s.epoch_batches(0, 4):
            pass
    assert "\n" not in str(e.value)
    assert _hashes(path) == before


def test_empty_unfinished_and_foreign_stores(tmp_path, ds):
    with pytest.raises(StoreError, match="no such distillation store"):
        open_store(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a distillation store"):
        open_store(tmp_path / "empty")
    part = write_store(tmp_path / "part", ds, upto=2)
    with pytest.raises(StoreError, match=r"not finished \(2 of 5 shards\)"):
        open_store(part)
    m = json.loads((part / "manifest.json").read_text())
    m.update(complete=True, shards=[], num_shards=0, examples=0)
    (part / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="holds no examples"):
        open_store(part)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text(
        '{"format": "mnv4-nas-distill-store", "version": 1, "settings": []}'
    )
    with pytest.raises(StoreError, match="'settings'"):
        open_store(tmp_path / "bad")


def test_the_writer_refuses_other_settings_and_other_folders(tmp_path, store, ds):
    before = _hashes(store)
    with pytest.raises(StoreError, match=r"another --aug \(none there, mixup now\)"):
        StoreWriter(store, _settings(ds, 3, 25, aug="mixup"), examples=120, num_shards=5).__enter__()
    with pytest.raises(StoreError, match=r"another --resolution"):
        other = _settings(ds, 3, 25)
        other["data"]["resolution"] = 32
        StoreWriter(store, other, examples=120, num_shards=5).__enter__()
    assert _hashes(store) == before
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="holds other files"):
        StoreWriter(tmp_path / "f", _settings(ds, 3, 25), examples=120, num_shards=5).__enter__()
    assert _hashes(tmp_path / "f") == {"notes.txt": hashlib.sha256(b"mine").hexdigest()}


def test_resuming_cleans_temporary_files_and_adopts_an_unlisted_shard(tmp_path, ds):
    path = write_store(tmp_path / "s", ds, upto=1)
    # a kill -9 after shard 1 was renamed into place but before the manifest listed it, and one mid-write
    shard1 = _shard(ds, 1, 25, 120, 0)
    save_file(shard1, path / "shard-00001.safetensors")
    (path / ".shard-00002.safetensors.999.tmp").write_bytes(b"half")
    ino = (path / "shard-00001.safetensors").stat().st_ino
    finished = (path / "shard-00000.safetensors").read_bytes()
    with StoreWriter(path, _settings(ds, 3, 25), examples=120, num_shards=5) as w:
        assert not (path / ".shard-00002.safetensors.999.tmp").exists()
        assert w.is_done(0) and w.is_done(1) and not w.is_done(2)
        with pytest.raises(StoreError, match="another process is building"):
            StoreWriter(path, _settings(ds, 3, 25), examples=120, num_shards=5).__enter__()
        for k in range(2, 5):
            w.write_shard(k, _shard(ds, k, 25, 120, 0))
        w.finish()
    assert (path / "shard-00001.safetensors").stat().st_ino == ino  # adopted, not rewritten
    assert (path / "shard-00000.safetensors").read_bytes() == finished
    assert open_store(path).train_size() == 120


def test_load_training_data_takes_a_store(store, ds):
    src, held_out = load_training_data(str(store), RES)
    assert isinstance(src, DistillStore) and held_out.classes == ds.classes
    assert torch.equal(held_out.val_x, ds.val_x)
    assert torch.equal(load_data(str(store), RES).train_x, ds.train_x)  # a store stands for its source data
    with pytest.raises(StoreError, match="--resolution 32 differs"):
        load_training_data(str(store), 32)


def test_a_changed_source_data_set_is_noticed(tmp_path, ds):
    path = write_store(tmp_path / "s", ds, replicas=1, shard_size=40)
    m = json.loads((path / "manifest.json").read_text())
    m["settings"]["data"]["fingerprint"] = "0" * 64
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(StoreError, match="has changed since"):
        open_store(path).source_data()
