"""The shared recipe: checks, schedule, weight-decay groups, EMA, seeds."""

from __future__ import annotations

import math

import pytest
import torch

from nas.errors import NasError
from nas.model import build_model
from nas.train import ModelEma, Recipe, epoch_seed, lr_at, param_groups


@pytest.mark.parametrize(
    ("field", "value", "msg"),
    [
        ("epochs", 0, "epochs must be at least 1"),
        ("batch_size", 1, "batch_size must be at least 2"),
        ("lr", 0.0, "lr must be > 0"),
        ("lr", math.nan, "lr must be a finite number"),
        ("lr", math.inf, "lr must be a finite number"),
        ("lr_warmup", 1.0, "lr_warmup must be < 1"),
        ("label_smoothing", -0.1, "label_smoothing must be >= 0"),
        ("ema_decay", 1.0, "ema_decay must be < 1"),
        ("ema_decay", 0.0, "ema_decay must be > 0"),
        ("grad_clip", math.nan, "grad_clip must be a finite number"),
        ("optimizer", "lamb", "optimizer must be one of adamw, sgd"),
        ("augment", "mixup!", "augment must be one of"),
        ("amp", "fp8", "amp must be one of auto, off, bf16, fp16"),
    ],
)
def test_bad_recipes_are_one_line_errors(field, value, msg):
    with pytest.raises(NasError, match=msg) as exc:
        Recipe(**{field: value}).check()
    assert "\n" not in str(exc.value)


def test_errors_name_the_flag():
    with pytest.raises(NasError, match="^--lr must be > 0"):
        Recipe(lr=0.0).check(lambda f: "--" + f.replace("_", "-"))


def test_schedule_warms_up_then_decays_to_zero():
    r = Recipe(lr=1.0, lr_warmup=0.1)
    lrs = [lr_at(r, s, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # 10 warm-up steps
    assert lrs[10] == pytest.approx(1.0) and all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 1e-3


def test_weight_decay_on_conv_and_linear_weights_only(small_arch):
    model = build_model(small_arch)
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    ids = [{id(p) for p in g["params"]} for g in (decay, no_decay)]
    assert id(model.head.classifier.weight) in ids[0] and id(model.head.classifier.bias) in ids[1]


def test_ema_follows_the_model_with_warm_up(small_arch):
    model = build_model(small_arch)
    ema = ModelEma(model, decay=0.99, warmup=True)
    assert ema.decay_at(1) == 0.0 and 0 < ema.decay_at(2) < ema.decay_at(50) <= 0.99 and ema.decay_at(10**6) == 0.99
    w = model.head.classifier.weight
    with torch.no_grad():
        w.add_(1.0)
    ema.update(1)  # the first update copies
    assert torch.equal(ema.module.head.classifier.weight, w)
    before = ema.module.head.classifier.weight.clone()
    with torch.no_grad():
        w.add_(1.0)
    ema.update(2)
    d = ema.decay_at(2)
    torch.testing.assert_close(ema.module.head.classifier.weight, d * before + (1 - d) * w)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_epoch_seeds_are_distinct_and_stable():
    seeds = {epoch_seed(0, e, s) for e in range(5) for s in range(1, 5)}
    assert len(seeds) == 20 and epoch_seed(3, 1, 2) == epoch_seed(3, 1, 2) != epoch_seed(4, 1, 2)
