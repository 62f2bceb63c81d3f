"""Supernet training: loss goes down, checkpoints resume exactly (also after kill -9), DDP with 2 processes,
the supernet estimator."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nas.errors import NasError
from nas.space import contains, sample
from nas.supernet import (
    Supernet,
    SupernetEstimator,
    TrainConfig,
    largest_arch,
    load_data,
    load_supernet,
    make_estimator,
    smallest_arch,
    train_supernet,
    tunas_search,
)
from nas.supernet._checkpoint import load_checkpoint
from nas.supernet._train import make_optimizer

TINY_DATA = "builtin:20"  # 200 training and 200 held-out images


@pytest.fixture(scope="module")
def tiny_data():
    return load_data(TINY_DATA, 32)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _fixed_batch_loss(net: Supernet, data, archs) -> float:
    idx = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))[:64]
    x = data.normalize(data.train_x[idx])
    y = data.train_y[idx]
    net.train()
    with torch.no_grad():
        return float(np.mean([float(F.cross_entropy(net(x, a, track_bn=False), y)) for a in archs]))


def _easy_data(tmp_path):
    """Four colour classes: one epoch is enough to learn something."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 80)
    x = rng.integers(0, 90, (len(y), 32, 32, 3))
    for c in range(3):
        x[y == c, :, :, c] += 150
    p = tmp_path / "easy.npz"
    np.savez(p, images=x.astype(np.uint8), labels=y)
    return str(p), load_data(str(p), 32)


@pytest.mark.parametrize("sampler", ["sandwich", "uniform"])
def test_one_epoch_lowers_the_loss(conv_space, tmp_path, sampler):
    spec, data = _easy_data(tmp_path)
    archs = [largest_arch(conv_space), smallest_arch(conv_space)]
    before = _fixed_batch_loss(Supernet(conv_space, resolution=32, num_classes=4, seed=0), data, archs)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=5e-3, eval_every=0, sampler=sampler)
    res = train_supernet(conv_space, data, tmp_path / "s.pt", cfg, data_spec=spec)
    net, meta, _ = load_supernet(res.checkpoint)
    after = _fixed_batch_loss(net, data, archs)
    assert before == pytest.approx(np.log(4), abs=1e-4)  # zero-initialised classifier: chance level
    assert after < before - 0.2
    assert res.epochs_done == 1 and len(res.history) == 1 and res.images_per_second > 0
    assert meta["epochs_done"] == 1 and meta["data"]["spec"].endswith("easy.npz") and meta["num_classes"] == 4
    assert res.history[0]["subnets_per_step"] == (4 if sampler == "sandwich" else 2)


@pytest.fixture
def forwarded(monkeypatch):
    """Every architecture :meth:`Supernet.forward` runs, in order."""
    seen = []
    forward = Supernet.forward

    def spy(self, x, arch, **kw):
        seen.append(arch)
        return forward(self, x, arch, **kw)

    monkeypatch.setattr(Supernet, "forward", spy)
    return seen


@pytest.mark.parametrize(("sampler", "random_subnets", "per_step"), [("sandwich", 1, 3), ("uniform", 3, 3)])
def test_samplers_run_their_subnets_each_step(
    conv_space, tiny_data, tmp_path, forwarded, sampler, random_subnets, per_step
):
    cfg = TrainConfig(epochs=1, batch_size=32, eval_every=0, sampler=sampler, random_subnets=random_subnets)
    train_supernet(conv_space, tiny_data, tmp_path / "s.pt", cfg, data_spec=TINY_DATA, max_steps_per_epoch=4)
    seen = [a.arch for a in forwarded]
    assert len(seen) == 4 * per_step
    steps = [seen[i : i + per_step] for i in range(0, len(seen), per_step)]
    big, small = largest_arch(conv_space).arch, smallest_arch(conv_space).arch
    if sampler == "sandwich":  # the largest (teacher) first, then the smallest, then the random ones
        assert all(st[0] == big and st[1] == small for st in steps)
    else:  # uniform: random draws only, never pinned to the extremes
        assert not all(st[0] == big for st in steps) and len(set(seen)) > per_step


def test_sandwich_random_ops_pins_only_widths_and_depths(conv_space, tiny_data, tmp_path, forwarded):
    from nas.space import widths_of

    seen = forwarded
    cfg = TrainConfig(epochs=1, batch_size=32, eval_every=0, random_subnets=0, sandwich_ops="random")
    train_supernet(conv_space, tiny_data, tmp_path / "s.pt", cfg, data_spec=TINY_DATA, max_steps_per_epoch=6)
    assert len(seen) == 12
    big, small = largest_arch(conv_space), smallest_arch(conv_space)
    teachers, students = seen[0::2], seen[1::2]
    # every step: the largest / smallest widths and depths, with block variants drawn afresh
    assert all(widths_of(conv_space, a) == widths_of(conv_space, big) for a in teachers)
    assert all(widths_of(conv_space, a) == widths_of(conv_space, small) for a in students)
    assert all(contains(conv_space, a) for a in seen)
    assert len({a.arch for a in teachers}) > 1 and any(a.arch != big.arch for a in teachers)
    assert len({a.arch for a in students}) > 1


def test_kernel_transforms_get_no_weight_decay(conv_space):
    net = Supernet(conv_space, kernel_transform=True)
    decay, no_decay = make_optimizer(net, TrainConfig()).param_groups
    transforms = {id(p) for p in net.kernel_transforms.parameters()}
    assert transforms and transforms <= {id(p) for p in no_decay["params"]}
    assert not transforms & {id(p) for p in decay["params"]} and decay["weight_decay"] > 0
    assert net.body["stem"].conv.weight in decay["params"]


def test_sandwich_ops_must_be_known():
    with pytest.raises(NasError, match="sandwich_ops must be one of extreme, random"):
        TrainConfig(sandwich_ops="largest").check()


def test_uniform_sampler_needs_a_subnet_per_step():
    with pytest.raises(NasError, match="random_subnets must be >= 1 with sampler uniform"):
        TrainConfig(sampler="uniform", random_subnets=0).check()


class _Stop(Exception):
    pass


def _stop_after_first_epoch(entry):
    if entry["epoch"] == 1:
        raise _Stop


@pytest.mark.parametrize("sampler", ["sandwich", "uniform", "tunas"])
def test_resume_continues_at_the_right_epoch_exactly(conv_space, tiny_data, tmp_path, sampler):
    cfg = TrainConfig(epochs=2, batch_size=32, sampler=sampler, eval_every=0, rl_delay=0.0)
    straight = train_supernet(conv_space, tiny_data, tmp_path / "a.pt", cfg, data_spec=TINY_DATA)
    with pytest.raises(_Stop):
        train_supernet(
            conv_space, tiny_data, tmp_path / "b.pt", cfg, data_spec=TINY_DATA, on_epoch=_stop_after_first_epoch
        )
    assert load_checkpoint(tmp_path / "b.pt")["meta"]["epochs_done"] == 1
    resumed = train_supernet(conv_space, tiny_data, tmp_path / "b.pt", cfg, data_spec=TINY_DATA)
    assert resumed.resumed_from == 1 and resumed.epochs_done == 2 and len(resumed.history) == 2
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    for k, v in a["model"].items():
        torch.testing.assert_close(v, b["model"][k], rtol=0, atol=1e-6, msg=k)
    if sampler == "tunas":
        for la, lb in zip(a["controller"]["logits"], b["controller"]["logits"]):
            torch.testing.assert_close(la, lb, rtol=0, atol=1e-9)
        assert straight.tunas is not None and resumed.tunas is not None
        assert straight.tunas.arch == resumed.tunas.arch
    # Finished: calling again does nothing; --no-resume starts over.
    again = train_supernet(conv_space, tiny_data, tmp_path / "b.pt", cfg, data_spec=TINY_DATA)
    assert again.resumed_from == 2 and again.epochs_done == 2
    fresh = train_supernet(
        conv_space,
        tiny_data,
        tmp_path / "b.pt",
        TrainConfig(epochs=1, batch_size=32, sampler=sampler, eval_every=0),
        data_spec=TINY_DATA,
        resume=False,
    )
    assert fresh.resumed_from == 0 and fresh.epochs_done == 1


def test_checkpoint_is_weights_only_and_incompatible_resume_fails(conv_space, hybrid_space, tiny_data, tmp_path):
    p = tmp_path / "c.pt"
    train_supernet(
        conv_space,
        tiny_data,
        p,
        TrainConfig(epochs=1, batch_size=32, eval_every=0),
        data_spec=TINY_DATA,
        max_steps_per_epoch=2,
    )
    raw = torch.load(p, weights_only=True)
    assert raw["format"] == "mnv4-nas-supernet" and isinstance(raw["meta"], str)
    with pytest.raises(NasError, match="holds a checkpoint trained with space t-conv"):
        train_supernet(
            hybrid_space, load_data(TINY_DATA, 64), p, TrainConfig(epochs=1, batch_size=32), data_spec=TINY_DATA
        )
    with pytest.raises(NasError, match="sampler"):
        train_supernet(
            conv_space, tiny_data, p, TrainConfig(epochs=2, batch_size=32, sampler="tunas"), data_spec=TINY_DATA
        )
    with pytest.raises(NasError, match="kernel_transform = False"):
        train_supernet(
            conv_space, tiny_data, p, TrainConfig(epochs=2, batch_size=32, kernel_transform=True), data_spec=TINY_DATA
        )
    # A checkpoint written before a config field existed resumes when the run uses that field's default.
    old = {**raw, "meta": json.loads(raw["meta"])}
    del old["meta"]["config"]["kernel_transform"]
    torch.save({**old, "meta": json.dumps(old["meta"])}, p)
    res = train_supernet(
        conv_space,
        tiny_data,
        p,
        TrainConfig(epochs=2, batch_size=32, eval_every=0),
        data_spec=TINY_DATA,
        max_steps_per_epoch=2,
    )
    assert (res.resumed_from, res.epochs_done) == (1, 2)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(NasError, match="not a readable supernet checkpoint"):
        load_checkpoint(bad)
    torch.save({"x": 1}, bad)
    with pytest.raises(NasError, match="not an mnv4-nas supernet checkpoint"):
        load_checkpoint(bad)


def test_tunas_training_reports_the_controllers_choice(conv_space, tiny_data, tmp_path):
    cfg = TrainConfig(epochs=2, batch_size=32, sampler="tunas", rl_delay=0.0, rl_lr=0.05)
    res = train_supernet(conv_space, tiny_data, tmp_path / "t.pt", cfg, data_spec=TINY_DATA)
    t = res.tunas
    assert t is not None and contains(conv_space, t.arch)
    assert 0 <= t.score <= 1 and t.latency_ms[0] > 0 and t.budgets[0] > 0
    assert set(t.probabilities) == {d.name for d in Supernet(conv_space).decisions()}
    assert res.meta["budget_note"].startswith("median cost") and res.meta["cost_unit"] == "MACs"
    assert "val_acc_controller" in res.history[-1] and len(t.history) == res.meta["epochs_done"] * 6


# ----------------------------------------------------------------------------------------------
# estimator
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory, conv_space, tiny_data):
    p = tmp_path_factory.mktemp("ckpt") / "sandwich.pt"
    torch.set_num_threads(1)
    train_supernet(conv_space, tiny_data, p, TrainConfig(epochs=1, batch_size=32, eval_every=0), data_spec=TINY_DATA)
    return p


def test_supernet_estimator_scores_and_caches(trained, conv_space):
    est = make_estimator(f"supernet:{trained}")
    assert isinstance(est, SupernetEstimator) and est.name == f"supernet:{trained}"
    assert "held-out" in est.meaning and "BatchNorm recalibrated" in est.meaning
    rng = np.random.default_rng(0)
    archs = [sample(conv_space, rng) for _ in range(3)]
    s1 = est.score(archs)
    assert s1.shape == (3,) and np.all((s1 >= 0) & (s1 <= 1))
    assert len(est._cache) == 3
    np.testing.assert_array_equal(est.score(archs[::-1]), s1[::-1])
    # An architecture at another deployment resolution scores like the training-resolution one.
    import dataclasses

    hi = dataclasses.replace(archs[0], resolution=64, num_classes=1000)
    assert est.score([hi])[0] == s1[0]
    other = Supernet(conv_space).normalize(archs[0])
    assert est.score([other])[0] == s1[0]
    with pytest.raises(NasError, match="not a member"):
        from nas.zoo import get_spec

        est.score([get_spec("mnv4-conv-small", resolution=32, num_classes=10)])
    assert est.controller() is None
    with pytest.raises(NasError, match="needs a checkpoint"):
        make_estimator("supernet")


def test_tunas_search_with_a_supernet_estimator(trained, conv_space):
    est = make_estimator(f"supernet:{trained}")
    res = tunas_search(conv_space, est, lambda archs: np.ones(len(archs)), 1.0, steps=5, seed=0)
    assert contains(conv_space, res.arch) and 0 <= res.score <= 1
    assert res.score == est.score([res.arch])[0]  # the final score is the full estimate


# ----------------------------------------------------------------------------------------------
# processes: kill -9, DDP
# ----------------------------------------------------------------------------------------------


def _console_script() -> str:
    return shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")


@pytest.mark.slow
def test_kill_9_leaves_a_loadable_checkpoint(conv_space_path, tmp_path):
    ckpt = tmp_path / "k.pt"
    cmd = [
        _console_script(),
        "supernet",
        "train",
        "--space",
        str(conv_space_path),
        "--data",
        TINY_DATA,
        "--epochs",
        "200",
        "--batch-size",
        "32",
        "--out",
        str(ckpt),
        "--threads",
        "1",
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
        for delay in (0.37, 0.61, 0.83):  # a few kills at arbitrary moments of later epochs
            time.sleep(delay)
            load_checkpoint(ckpt)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    meta = load_checkpoint(ckpt)["meta"]
    done = meta["epochs_done"]
    assert done >= 1
    from nas.space import load_space_file

    res = train_supernet(
        load_space_file(conv_space_path),
        load_data(TINY_DATA, 32),
        ckpt,
        TrainConfig(epochs=done + 1, batch_size=32, eval_every=0),
        data_spec=TINY_DATA,
    )
    assert res.resumed_from == done and res.epochs_done == done + 1


def _torchrun_train(space_path, tmp_path, out, *extra: str) -> subprocess.CompletedProcess:
    """``supernet train`` (1 epoch, batch 16 per process) under torchrun with 2 CPU processes; asserts success."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        _console_script(),
        "supernet",
        "train",
        "--space",
        str(space_path),
        "--data",
        TINY_DATA,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(out),
        "--threads",
        "1",
        *extra,
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.slow
def test_ddp_two_cpu_processes(conv_space_path, tmp_path):
    ckpt = tmp_path / "ddp.pt"
    _torchrun_train(conv_space_path, tmp_path, ckpt, "--sampler", "tunas")
    meta = load_checkpoint(ckpt)["meta"]
    assert meta["world_size"] == 2 and meta["epochs_done"] == 1
    # 200 images, 2 processes x 16 per step: 6 steps, each seeing 32 images.
    assert meta["history"][0]["images_per_s"] > 0 and len(meta["rl_history"]) == 6
    assert np.isfinite(meta["history"][0]["loss"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_few_shot(conv_space_path, tmp_path):
    p = _torchrun_train(
        conv_space_path, tmp_path, tmp_path / "fs.json", "--split", "stage2.channels", "--phase", "coarse"
    )
    assert "done: 2 shots" in p.stdout and p.stdout.count("done: 2 shots") == 1  # rank 0 reports
    for c in (16, 24):
        meta = load_checkpoint(tmp_path / f"fs.stage2.channels={c}.pt")["meta"]
        assert meta["world_size"] == 2 and meta["epochs_done"] == 1
