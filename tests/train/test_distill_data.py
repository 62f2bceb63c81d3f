"""build_store (offline distillation data), the ONNX teacher and the distillation loss on a store."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import load_file

from nas.data import StoreError, load_data, open_store
from nas.errors import NasError
from nas.export.onnx import export_module
from nas.model import build_model, random_batches, recalibrate_bn
from nas.spec import parse_arch
from nas.train import ModuleTeacher, OnnxTeacher, TeacherError, build_store, soft_cross_entropy

RES = 16
ARCH = "res16|cn_r1_k3_s2_c8|head_c16_h0_cls10"


@pytest.fixture(scope="module")
def ds():
    return load_data("builtin:4", RES)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return recalibrate_bn(build_model(parse_arch(ARCH), seed=0), random_batches((8, 3, RES, RES), 2))


@pytest.fixture(scope="module")
def teacher(model, ds):
    return ModuleTeacher(model, ds.mean, ds.std, 10, RES, source="tiny")


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


KW = dict(aug="inception-randaug", replicas=3, seed=7, shard_size=16, batch_size=8, data_spec="builtin:4")


@pytest.fixture(scope="module")
def whole(tmp_path_factory, teacher, ds):
    out = tmp_path_factory.mktemp("w") / "store"
    return build_store(teacher, ds, out, **KW)


class _Stop(Exception):
    pass


def test_a_killed_build_resumes_to_the_same_shards(tmp_path, teacher, ds, whole):
    assert whole.examples == 120 and whole.shards == 8 and whole.shards_built == 8 and whole.images_per_s > 0
    out = tmp_path / "store"

    def stop_midway(p):
        if p.shards_done == 3 and p.examples_done > 3 * 16:  # inside the 4th shard
            raise _Stop

    with pytest.raises(_Stop):
        build_store(teacher, ds, out, on_progress=stop_midway, **KW)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json"] + [f"shard-{k:05d}.safetensors" for k in range(3)]
    first = _hashes(out)
    again = build_store(teacher, ds, out, **KW)
    assert again.shards_resumed == 3 and again.shards_built == 5
    now = _hashes(out)
    assert all(now[n] == h for n, h in first.items() if n != "manifest.json")  # finished shards untouched
    ref = _hashes(whole.path)
    assert {n: h for n, h in now.items() if n != "manifest.json"} == {
        n: h for n, h in ref.items() if n != "manifest.json"
    }
    done = build_store(teacher, ds, out, **KW)  # a finished store: nothing rebuilt, nothing rewritten
    assert done.shards_resumed == 8 and done.shards_built == 0 and _hashes(out) == now


def test_the_store_holds_what_the_teacher_said_about_each_stored_image(whole, teacher, ds):
    t = load_file(whole.path / "shard-00002.safetensors")
    probs = teacher.probs(t["images"].float() / 255)
    assert torch.allclose(t["probs"].float(), probs, atol=1e-3)
    assert torch.equal(t["labels"], ds.train_y[t["index"]])
    all_rep = torch.cat([load_file(p)["replica"] for p in sorted(whole.path.glob("shard-*"))])
    assert torch.bincount(all_rep).tolist() == [40, 40, 40]
    m = open_store(whole.path).manifest
    assert m["build"]["images_per_s"] > 0 and m["build"]["wall_s"] > 0 and m["settings"]["seed"] == 7


def test_the_distillation_loss_on_a_store_batch_is_the_cross_entropy_to_the_stored_probabilities(whole):
    store = open_store(whole.path)
    batch = next(iter(store.epoch_batches(0, 6)))
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(1))
    p = batch.soft.double().numpy()
    z = logits.double().numpy()
    log_q = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    expected = float(np.mean(-(p * log_q).sum(1)))
    assert abs(float(soft_cross_entropy(logits, batch.soft)) - expected) < 1e-5
    # the stored probabilities: exactly the float16 values of the shard
    raw = torch.cat([load_file(f)["probs"] for f in sorted(whole.path.glob("shard-*"))]).float()
    assert all(any(torch.equal(row, r) for r in raw) for row in batch.soft)


def test_a_mismatched_teacher_is_refused_before_anything_is_written(tmp_path, model, ds, whole):
    wrong_classes = ModuleTeacher(model, ds.mean, ds.std, 12, RES, source="twelve")
    with pytest.raises(TeacherError, match="gives 12 classes; the data .* has 10"):
        build_store(wrong_classes, ds, tmp_path / "new", **KW)
    wrong_res = ModuleTeacher(model, ds.mean, ds.std, 10, 32, source="big")
    with pytest.raises(TeacherError, match="takes 32 px images; .* at 16 px"):
        build_store(wrong_res, ds, tmp_path / "new", **KW)
    assert not (tmp_path / "new").exists()
    before = _hashes(whole.path)
    with pytest.raises(TeacherError):
        build_store(wrong_classes, ds, whole.path, **KW)
    other = ModuleTeacher(model, ds.mean, ds.std, 10, RES, source="another")
    with pytest.raises(StoreError, match=r"another --teacher \(its source\)"):
        build_store(other, ds, whole.path, **KW)
    with pytest.raises(NasError, match="--replicas"):
        build_store(other, ds, tmp_path / "new", **{**KW, "replicas": 0})
    assert _hashes(whole.path) == before and not (tmp_path / "new").exists()


@pytest.mark.parametrize("aug", ["mixup", "none"])
def test_other_recipes_build_valid_stores(tmp_path, teacher, ds, aug):
    s = build_store(teacher, ds, tmp_path / aug, **{**KW, "aug": aug, "replicas": 1, "shard_size": 64})
    t = load_file(s.path / "shard-00000.safetensors")
    assert t["images"].shape == (40, 3, RES, RES) and t["images"].dtype == torch.uint8
    if aug == "none":
        assert torch.equal(t["images"], ds.train_x[t["index"]])
    else:
        assert not torch.equal(t["images"], ds.train_x[t["index"]])
    assert open_store(s.path).train_size() == 40


# ----------------------------------------------------------------------------------------------
# ONNX teacher
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory, model):
    d = tmp_path_factory.mktemp("onnx")
    export_module(model, (1, 3, RES, RES), d / "dyn.onnx", dynamic_batch=True)
    export_module(model, (4, 3, RES, RES), d / "b4.onnx")
    export_module(
        torch.nn.Sequential(model, torch.nn.Softmax(dim=1)), (1, 3, RES, RES), d / "soft.onnx", dynamic_batch=True
    )
    return d


@pytest.mark.parametrize("name", ["dyn.onnx", "b4.onnx", "soft.onnx"])
def test_the_onnx_teacher_matches_the_torch_model(onnx_files, teacher, ds, name):
    t = OnnxTeacher(onnx_files / name, mean=ds.mean, std=ds.std, threads=1)
    assert t.num_classes == 10 and t.resolution == RES
    assert t.output == ("probs" if name == "soft.onnx" else "logits")
    x = ds.train_x[:7].float() / 255  # 7 images: a fixed batch of 4 is padded
    assert torch.allclose(t.probs(x), teacher.probs(x), atol=1e-5)
    d = t.describe()
    assert d["kind"] == "onnx" and len(d["sha256"]) == 64 and d["mean"] == list(ds.mean)


def test_onnx_teacher_errors(tmp_path, onnx_files):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(TeacherError, match="not a loadable ONNX model"):
        OnnxTeacher(bad)
    with pytest.raises(TeacherError, match="do not sum to 1"):
        OnnxTeacher(onnx_files / "dyn.onnx", output="probs")
    with pytest.raises(NasError, match="teacher std"):
        OnnxTeacher(onnx_files / "dyn.onnx", std=(0.2, 0.0, 0.2))
    # a model with a dynamic input size needs the resolution to run at
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])
    graph = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=0)], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "any.onnx")
    with pytest.raises(TeacherError, match="dynamic"):
        OnnxTeacher(tmp_path / "any.onnx")
    t = OnnxTeacher(tmp_path / "any.onnx", resolution=12)
    assert t.resolution == 12 and t.num_classes == 3 and t.output == "logits"
