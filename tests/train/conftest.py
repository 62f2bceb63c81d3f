"""Tiny data and architectures for training tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.data import load_training_data
from nas.spec import parse_arch

#: A small conv net at 32 px (a UIB with both depthwise convs, one with none); trains in well under a second per epoch.
SMALL = "res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s2_e2_c16|uir_r1_a0_k0_s1_e2_c16|uir_r1_a0_k3_s2_e2_c24|head_c32_cls10"


@pytest.fixture
def small_arch():
    return parse_arch(SMALL)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def easy_npz(tmp_path_factory):
    """Four colour classes (one epoch learns them): 320 images, 10 % held out."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 80)
    x = rng.integers(0, 90, (len(y), 32, 32, 3))
    for c in range(3):
        x[y == c, :, :, c] += 150
    p = tmp_path_factory.mktemp("easy") / "easy.npz"
    np.savez(p, images=x.astype(np.uint8), labels=y)
    return str(p)


@pytest.fixture(scope="session")
def easy(easy_npz):
    """(TrainSource, held-out Dataset) of the colour classes at 32 px."""
    return load_training_data(easy_npz, 32)
