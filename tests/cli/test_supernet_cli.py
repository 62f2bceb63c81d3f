"""``mnv4-nas supernet train|info|eval|extract``."""

from __future__ import annotations

import pytest
import torch

from nas.model import build_model
from nas.spec import parse_arch

SPACE = """
name = "cli-tiny"
resolution = 32
num_classes = 10
stem = "cn_r1_k3_s2_c8"
head = "head_c16_h0"

[fine]
start_dw = [0, 3]
mid_dw = [0, 3]
expansion = [2]

[[stages]]
kind = "uib"
stride = 2
channels = [8, 16]
depth = [1, 2]

[[stages]]
kind = "uib"
stride = 2
channels = [16, 24]
depth = [1, 2]
"""


@pytest.fixture(scope="module")
def space_file(write_space):
    return write_space("cli-tiny", SPACE)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, space_file):
    from nas.cli import main

    p = tmp_path_factory.mktemp("ckpt") / "sn.pt"
    code = main(
        [
            "supernet",
            "train",
            "--space",
            str(space_file),
            "--data",
            "builtin:12",
            "--epochs",
            "1",
            "--batch-size",
            "20",
            "--out",
            str(p),
            "--threads",
            "1",
            "--json",
        ]
    )
    assert code == 0
    return p


def test_train_json_and_resume(cli, space_file, ckpt, tmp_path):
    fresh = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(tmp_path / "f.pt"),
        "--threads",
        "1",
        "--json",
    )
    assert fresh.code == 0 and fresh.json()["epochs_done"] == 1  # stdout is one JSON document, no epoch lines
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(ckpt),
        "--json",
    )
    assert r.code == 0, r.err
    out = r.json()
    assert out["epochs_done"] == 1 and out["resumed_from_epoch"] == 1 and out["checkpoint"] == str(ckpt)


def test_train_prints_progress_and_tunas_choice(cli, space_file, tmp_path):
    p = tmp_path / "t.pt"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(p),
        "--sampler",
        "tunas",
        "--cost",
        "params",
        "--budget",
        "20k",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    assert "epoch 1:" in r.out and "images/s" in r.out and "TuNAS controller's choice" in r.out
    assert "res32|" in r.out.strip().splitlines()[-1]
    assert f"--estimator supernet:{p} [--engine tunas]" in " ".join(r.out.split())
    info = cli("supernet", "info", str(p), "--json").json()
    assert info["budget"] == 20000 and info["config"]["sampler"] == "tunas" and info["cost_unit"] == "params"


def test_a_coarse_supernet_is_suggested_as_the_coarse_estimator(cli, space_file, tmp_path):
    # a coarse-phase checkpoint given as --estimator is refused, so the hint must not suggest that
    p = tmp_path / "coarse.pt"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(p),
        "--phase",
        "coarse",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    assert f"--estimator supernet:JOINT.pt --coarse-estimator supernet:{p}" in " ".join(r.out.split())


def test_train_sandwich_options_reach_the_checkpoint(cli, write_space, tmp_path):
    k35 = write_space(
        "cli-tiny-k35",
        SPACE.replace('name = "cli-tiny"', 'name = "cli-tiny-k35"').replace("mid_dw = [0, 3]", "mid_dw = [0, 3, 5]"),
    )
    p = tmp_path / "r.pt"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(k35),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(p),
        "--sandwich-ops",
        "random",
        "--no-distill",
        "--random-subnets",
        "1",
        "--kernel-transform",
        "--threads",
        "1",
        "--json",
    )
    assert r.code == 0, r.err
    cfg = cli("supernet", "info", str(p), "--json").json()["config"]
    assert (cfg["sandwich_ops"], cfg["distill"], cfg["random_subnets"], cfg["kernel_transform"]) == (
        "random",
        False,
        1,
        True,
    )
    r = cli("supernet", "info", str(p))
    # One transform per UIB position's middle DW (2 + 2 blocks at the largest depths).
    assert (
        "sampler sandwich (no distillation, random ops, 1 random subnets/step), kernel transform (4 convs)"
        in " ".join(r.out.split())
    )
    # The estimator rebuilds the supernet with its kernel transforms.
    from nas.supernet import load_supernet

    net, _, _ = load_supernet(p)
    assert net.kernel_transform and len(net.kernel_transforms) == 4


def test_info_eval_extract(cli, ckpt, tmp_path):
    r = cli("supernet", "info", str(ckpt))
    assert r.code == 0 and "cli-tiny" in r.out and "history" in r.out
    r = cli("supernet", "eval", str(ckpt), "--extremes", "--sample", "2", "--json", "--threads", "1")
    assert r.code == 0, r.err
    res = r.json()["results"]
    assert [x["name"] for x in res] == ["largest", "smallest", "sample0", "sample1"]
    assert all(0 <= x["accuracy"] <= 1 for x in res)
    arch = res[0]["arch"]
    r = cli("supernet", "eval", str(ckpt), arch)
    assert r.code == 0 and arch in r.out
    out = tmp_path / "m.pt"
    r = cli("supernet", "extract", str(ckpt), arch, "-o", str(out))
    assert r.code == 0, r.err
    saved = torch.load(out, weights_only=True)
    model = build_model(parse_arch(saved["arch"]))
    model.load_state_dict(saved["state_dict"])
    assert saved["classes"][0] == "disk" and len(saved["mean"]) == 3
    r = cli("supernet", "extract", str(ckpt), arch, "-o", str(tmp_path / "m.onnx"), "--format", "onnx")
    assert r.code == 0, r.err
    assert (tmp_path / "m.onnx").stat().st_size > 0


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--data", "{tmp}/nodata"], "no such file or directory"),
        (["--data", "{tmp}"], "not an image-folder data set"),
        (["--target", "pixel8-edgetpu"], "--target/--budget apply to --sampler tunas"),
        (["--sampler", "tunas", "--budget", "fast"], "budget must be a positive number"),
        (["--sampler", "uniform", "--random-subnets", "0"], "random_subnets must be >= 1 with sampler uniform"),
        (["--sandwich-ops", "largest"], "Invalid value for '--sandwich-ops'"),
        (["--space", "no-such-space"], "unknown search space"),
        (["--batch-size", "500"], "fewer than one batch of 500"),
    ],
)
def test_errors_are_one_line(cli, space_file, tmp_path, args, msg):
    base = [
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "x.pt"),
    ]
    (tmp_path / "stray.png").write_bytes(b"")
    r = cli(*base, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.code == 2, r.out
    assert msg in r.err and r.err.strip().count("\n") == 0


def test_few_shot_train_info_eval_extract(cli, space_file, tmp_path):
    p = tmp_path / "fs.json"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(p),
        "--split",
        "stage1.channels",
        "--threads",
        "1",
        "--json",
    )
    assert r.code == 0, r.err
    out = r.json()
    assert out["manifest"] == str(p) and [s["shot"] for s in out["shots"]] == [
        "stage1.channels=16",
        "stage1.channels=24",
    ]
    assert all(s["epochs_done"] == 1 for s in out["shots"])
    r = cli("supernet", "info", str(p))
    assert r.code == 0 and "2 shots on stage1.channels" in r.out and "shot stage1.channels=24" in r.out
    assert len(cli("supernet", "info", str(p), "--json").json()["shot_meta"]) == 2
    r = cli("supernet", "eval", str(p), "--extremes", "--json", "--threads", "1")
    assert r.code == 0, r.err
    res = r.json()["results"]
    assert [x["name"] for x in res] == ["largest", "smallest"] and all(0 <= x["accuracy"] <= 1 for x in res)
    assert "_c24|" in res[0]["arch"] and "few-shot supernet fs.json" in r.json()["meaning"]
    r = cli("supernet", "extract", str(p), res[1]["arch"], "-o", str(tmp_path / "s.onnx"), "--format", "onnx")
    assert r.code == 0, r.err


def test_few_shot_from_a_one_shot_start(cli, space_file, ckpt, tmp_path):
    p = tmp_path / "warm.json"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(p),
        "--split",
        "stage1.channels",
        "--init-from",
        str(ckpt),
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    r = cli("supernet", "info", str(p))
    assert r.code == 0 and f"started from {ckpt} (cli-tiny, joint; 1 epochs)" in " ".join(r.out.split())
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "bad.json"),
        "--split",
        "stage1.channels",
        "--init-from",
        str(tmp_path / "none.pt"),
    )
    assert r.code == 2 and "none.pt: no such supernet checkpoint" in r.err and r.err.strip().count("\n") == 0
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize(
    "args, msg",
    [
        (
            ["--split", "stage1.channels", "--out", "{tmp}/x.pt"],
            "--out: a few-shot supernet (--split) is a .json manifest",
        ),
        (["--out", "{tmp}/x.json"], "names a few-shot manifest; add --split DECISION"),
        (
            ["--split", "stage0.uib", "--out", "{tmp}/x.json"],
            "--split: 'stage0.uib' is not a width or depth decision of space cli-tiny (allowed: stage0.channels, stage0.depth, "
            "stage1.channels, stage1.depth)",
        ),
        (
            ["--split", "stage1.channels", "--sampler", "tunas", "--out", "{tmp}/x.json"],
            "few-shot supernets train with --sampler sandwich or uniform",
        ),
    ],
)
def test_few_shot_errors_are_one_line(cli, space_file, tmp_path, args, msg):
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space_file),
        "--data",
        "builtin:12",
        "--epochs",
        "1",
        *[a.replace("{tmp}", str(tmp_path)) for a in args],
    )
    assert r.code == 2, r.out
    assert msg in r.err and r.err.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())


def test_eval_needs_something_and_a_checkpoint(cli, ckpt, tmp_path):
    r = cli("supernet", "eval", str(ckpt))
    assert r.code == 2 and "nothing to score" in r.err
    r = cli("supernet", "info", str(tmp_path / "none.pt"))
    assert r.code == 2 and "no such supernet checkpoint" in r.err


def test_supernet_estimator_through_make_estimator(ckpt):
    from nas.supernet import make_estimator

    est = make_estimator(f"supernet:{ckpt}")
    assert est.name.startswith("supernet:")
