"""Stand-alone training: loss goes down, exact resume, refused changes, EMA, safetensors/ONNX outputs,
soft-label sources and online teachers, ``load_trained``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.data import Batch, DatasetSource
from nas.errors import NasError
from nas.model import build_model
from nas.train import (
    Engine,
    ModelSteps,
    ModuleTeacher,
    Recipe,
    StepBatch,
    StepContext,
    fit_model,
    init_distributed,
    load_trained,
    read_checkpoint,
    soft_cross_entropy,
    teacher_from_trained,
    train,
)

FAST = dict(batch_size=16, lr=5e-3)


def _loss_on(model, source, val) -> float:
    x = (val.val_x.float() / 255 - torch.tensor(source.mean).view(1, 3, 1, 1)) / torch.tensor(source.std).view(
        1, 3, 1, 1
    )
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(x), val.val_y))


def test_one_epoch_lowers_the_loss(small_arch, easy, tmp_path):
    source, val = easy
    run = train(small_arch, source, val, Recipe(epochs=1, ema=False, **FAST), tmp_path / "r")
    tm = load_trained(tmp_path / "r")
    fresh = build_model(tm.train_spec)
    fresh.head.classifier.weight.data.zero_()
    fresh.head.classifier.bias.data.zero_()
    assert _loss_on(fresh, source, val) == pytest.approx(np.log(4), abs=1e-4)  # zero classifier: chance level
    assert _loss_on(tm.model, source, val) < np.log(4) - 0.3
    assert run.epochs_done == 1 and run.results["val_acc"] > 0.5 and run.spec.num_classes == 4
    assert run.spec.resolution == 32 and tm.classes == ("0", "1", "2", "3") and tm.weights == "raw"


class _Stop(Exception):
    pass


def _stop_after_first(entry: dict[str, Any]) -> None:
    if entry["epoch"] == 1:
        raise _Stop


def test_resume_continues_exactly(small_arch, easy, tmp_path):
    source, val = easy
    cfg = Recipe(epochs=3, **FAST)
    straight = train(small_arch, source, val, cfg, tmp_path / "a")
    with pytest.raises(_Stop):
        train(small_arch, source, val, cfg, tmp_path / "b", on_epoch=_stop_after_first)
    assert (
        read_checkpoint(tmp_path / "b" / "checkpoint.pt", "mnv4-nas-train", 1, "training")["meta"]["epochs_done"] == 1
    )
    assert not (tmp_path / "b" / "model.safetensors").exists()
    resumed = train(small_arch, source, val, cfg, tmp_path / "b")
    assert resumed.resumed_from == 1 and resumed.epochs_done == 3 and len(resumed.history) == 3
    a, b = (read_checkpoint(tmp_path / d / "checkpoint.pt", "mnv4-nas-train", 1, "training") for d in "ab")
    for part in ("model", "ema"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), f"{part}.{k}"
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    # finished: rerunning trains nothing and rewrites the outputs; raising --epochs goes on
    again = train(small_arch, source, val, cfg, tmp_path / "b")
    assert again.resumed_from == again.epochs_done == 3 and (tmp_path / "b" / "model.safetensors").exists()


def test_changed_recipe_or_data_is_refused(small_arch, easy, tmp_path):
    source, val = easy
    out = tmp_path / "r"
    train(small_arch, source, val, Recipe(epochs=1, **FAST), out, max_steps_per_epoch=2)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(NasError, match=r"holds a training with lr = 0.005 \(now 0.001\); .*--no-resume") as exc:
        train(small_arch, source, val, Recipe(epochs=2, batch_size=16, lr=1e-3), out)
    assert "\n" not in str(exc.value)
    from nas.data import load_training_data

    other, other_val = load_training_data("builtin:4", 32)
    with pytest.raises(NasError, match="holds a training with other data"):
        train(small_arch, other, other_val, Recipe(epochs=2, **FAST), out)
    with pytest.raises(NasError, match="another architecture"):
        train(
            dataclasses.replace(small_arch, blocks=small_arch.blocks[:-1]), source, val, Recipe(epochs=2, **FAST), out
        )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    fresh = train(
        small_arch, source, val, Recipe(epochs=1, batch_size=16, lr=1e-3), out, resume=False, max_steps_per_epoch=1
    )
    assert fresh.resumed_from == 0 and fresh.epochs_done == 1


def test_ema_is_what_is_saved_and_outputs_agree(small_arch, easy, tmp_path):
    import onnxruntime as ort
    from safetensors.torch import load_file

    source, val = easy
    out = tmp_path / "r"
    run = train(small_arch, source, val, Recipe(epochs=2, ema_decay=0.9, **FAST), out, name="small")
    ck = read_checkpoint(out / "checkpoint.pt", "mnv4-nas-train", 1, "training")
    diff = [k for k, v in ck["model"].items() if v.is_floating_point() and not torch.equal(v, ck["ema"][k])]
    assert diff  # the average differs from the raw weights ...
    saved = load_file(str(out / "model.safetensors"))
    assert saved.keys() == ck["ema"].keys() and all(
        torch.equal(saved[k], ck["ema"][k]) for k in saved
    )  # ... and is saved
    assert run.results["weights"] == "ema" and run.history[-1]["val_acc_ema"] == run.results["val_acc_saved"]
    tm = load_trained(out / "model.safetensors")
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = tm.model(x).numpy()
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert 0 <= run.results["onnx_max_abs_diff"] < 1e-3
    doc = json.loads((out / "run.json").read_text())
    assert doc["results"]["weights"] == "ema" and doc["resolution"] == {"train": 32, "deploy": 32}
    assert doc["recipe"]["ema_decay"] == 0.9 and doc["data"]["identity"]["train_images"] == len(source.data.train_y)
    spec = json.loads((out / "spec.json").read_text())
    assert spec["num_classes"] == 4 and spec["arch"] == run.spec.arch
    assert (out / "metrics.csv").read_text().splitlines()[0].startswith("epoch,loss,train_acc,val_acc,val_acc_ema")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG" and "# Training of small" in (
        out / "summary.md"
    ).read_text()
    ck_model = load_trained(out / "checkpoint.pt")
    assert ck_model.weights == "ema"
    with torch.no_grad():
        assert torch.equal(ck_model.model(x), tm.model(x))


class _SoftSource:
    """A distillation-store stand-in: the easy images with soft targets on the *next* class."""

    def __init__(self, base: DatasetSource):
        self.base = base

    classes = property(lambda self: self.base.classes)
    resolution = property(lambda self: self.base.resolution)
    mean = property(lambda self: self.base.mean)
    std = property(lambda self: self.base.std)

    def train_size(self) -> int:
        return self.base.train_size()

    def epoch_batches(self, seed: int, batch_size: int, *, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        for b in self.base.epoch_batches(seed, batch_size, rank=rank, world=world):
            soft = F.one_hot((b.y + 1) % 4, 4).float() * 0.9 + 0.025
            yield Batch(b.x, b.y, soft)

    def identity(self) -> dict[str, Any]:
        return {**self.base.identity(), "kind": "fake-store"}

    def describe(self) -> str:
        return "fake soft-label store"


def test_a_soft_label_source_trains_to_its_targets(small_arch, easy, tmp_path):
    source, val = easy
    model = build_model(dataclasses.replace(small_arch, num_classes=4))
    r = fit_model(model, _SoftSource(source), val, Recipe(epochs=2, ema=False, **FAST))
    assert r["history"][-1]["train_acc"] < 0.3  # top-1 against the hard labels: it learnt the soft targets instead
    x = (val.val_x.float() / 255 - torch.tensor(source.mean).view(1, 3, 1, 1)) / torch.tensor(source.std).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        pred = model.eval()(x).argmax(1)
    assert float((pred == (val.val_y + 1) % 4).float().mean()) > 0.8


def test_online_teacher_loss_is_the_soft_cross_entropy(small_arch, easy):
    source, _ = easy
    spec4 = dataclasses.replace(small_arch, num_classes=4)
    student, teacher_net = build_model(spec4, seed=1), build_model(spec4, seed=2)
    t_mean, t_std = (0.2, 0.3, 0.4), (0.5, 0.6, 0.7)  # the teacher normalises with its own statistics
    teacher = ModuleTeacher(teacher_net, t_mean, t_std, 4, None)
    engine = Engine(student, Recipe(epochs=1, **FAST), source, init_distributed("cpu"))
    g = torch.Generator().manual_seed(0)
    x01 = torch.rand(6, 3, 32, 32, generator=g)
    batch = StepBatch(x01, engine.normalize(x01), torch.arange(6) % 4, None)
    student.train()
    out = ModelSteps(student, teacher).step(engine, batch, StepContext(0, 0, 1, 0, 1, 1e-3))
    with torch.no_grad():
        xt = (x01 - torch.tensor(t_mean).view(1, 3, 1, 1)) / torch.tensor(t_std).view(1, 3, 1, 1)
        p = F.softmax(teacher_net.eval()(xt), 1)
        student_logits = out.logits
        want = -(p * F.log_softmax(student_logits, 1)).sum(1).mean()
    torch.testing.assert_close(out.loss, want)
    torch.testing.assert_close(out.loss, soft_cross_entropy(student_logits, p))
    assert student.head.classifier.weight.grad is not None


def test_training_with_a_trained_teacher(small_arch, easy, tmp_path):
    source, val = easy
    train(small_arch, source, val, Recipe(epochs=1, ema=False, **FAST), tmp_path / "t", max_steps_per_epoch=3)
    teacher = teacher_from_trained(tmp_path / "t")
    assert (
        teacher.num_classes == 4
        and teacher.resolution == 32
        and teacher.describe()["source"].endswith("model.safetensors")
    )
    run = train(
        small_arch, source, val, Recipe(epochs=1, **FAST), tmp_path / "s", teacher=teacher, max_steps_per_epoch=3
    )
    assert json.loads((tmp_path / "s" / "run.json").read_text())["teacher"]["kind"] == "module"
    assert np.isfinite(run.history[0]["loss"])
    with pytest.raises(NasError, match="holds a training with teacher"):
        train(small_arch, source, val, Recipe(epochs=2, **FAST), tmp_path / "s")


def test_load_trained_refuses_what_is_not_a_training(tmp_path):
    with pytest.raises(NasError, match="no model.safetensors or checkpoint.pt"):
        load_trained(tmp_path)
    bad = tmp_path / "m.safetensors"
    bad.write_bytes(b"garbage" * 4)
    with pytest.raises(NasError, match="not a readable safetensors file"):
        load_trained(bad)
    ck = tmp_path / "checkpoint.pt"
    torch.save({"x": 1}, ck)
    with pytest.raises(NasError, match="not an mnv4-nas training checkpoint"):
        load_trained(ck)
