"""The distillation recipes (inception-randaug, mixup): deterministic in their seed, shapes and ranges kept."""

from __future__ import annotations

import pytest
import torch

from nas.data import AUGMENTATIONS, make_augment


@pytest.mark.parametrize("name", ["inception-randaug", "mixup"])
def test_recipes_are_seeded_and_keep_shapes_and_range(name):
    assert name in AUGMENTATIONS
    aug = make_augment(name, 16)
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x0 = x.clone()
    state = torch.random.get_rng_state()
    a, b, c = aug(x, 5), aug(x, 5), aug(x, 6)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator is untouched
    assert torch.equal(x, x0)  # the input is not modified
    assert a.shape == x.shape and a.dtype == torch.float32
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - x).abs().mean()) > 0.02  # it does change the images


def test_mixup_mixes_images_of_the_batch():
    aug = make_augment("mixup", 8)
    # constant images: the crop and flip leave them as they are, so the result is a convex mix of two of them
    x = torch.linspace(0, 1, 6).view(6, 1, 1, 1).expand(6, 3, 8, 8).contiguous()
    out = aug(x, 1)
    assert torch.allclose(out, out[:, :1, :1, :1].expand_as(out), atol=1e-5)
    assert not torch.allclose(out, x)
