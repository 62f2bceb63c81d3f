"""``mnv4-nas distill-data``: ONNX and supernet-member teachers, resume after SIGKILL, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nas.export.onnx import export_module
from nas.model import build_model, random_batches, recalibrate_bn
from nas.spec import parse_arch

ARCH = "res16|cn_r1_k3_s2_c8|head_c16_h0_cls10"


@pytest.fixture(scope="module")
def onnx_teacher(tmp_path_factory) -> Path:
    model = recalibrate_bn(build_model(parse_arch(ARCH), seed=0), random_batches((8, 3, 16, 16), 2))
    p = tmp_path_factory.mktemp("teacher") / "tiny.onnx"
    export_module(model, (1, 3, 16, 16), p, dynamic_batch=True)
    return p


def _shards(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("shard-*"))}


def _args(teacher: Path, out: Path, *extra: str) -> list[str]:
    return [
        "distill-data",
        "--teacher",
        str(teacher),
        "--data",
        "builtin:4",
        "--out",
        str(out),
        "--threads",
        "1",
        "--teacher-norm",
        "data",
        *extra,
    ]


def test_build_json_and_rerun(cli, onnx_teacher, tmp_path):
    out = tmp_path / "store"
    r = cli(*_args(onnx_teacher, out, "--replicas", "2", "--shard-size", "32", "--json"))
    assert r.code == 0, r.err
    s = r.json()
    assert s["examples"] == 80 and s["shards"] == 3 and s["shards_built"] == 3 and s["images_per_s"] > 0
    assert s["teacher"]["kind"] == "onnx" and s["aug"] == "inception-randaug" and s["bytes"] > 80 * 3 * 16 * 16
    r = cli(*_args(onnx_teacher, out, "--replicas", "2", "--shard-size", "32"))
    assert r.code == 0, r.err
    assert "already complete: 3 of 3 shards" in r.out and "0 built now" in " ".join(r.out.split())
    from nas.data import open_store

    store = open_store(out)
    assert store.settings["teacher"]["mean"] == list(store.mean)  # --teacher-norm data


@pytest.mark.slow
def test_a_build_killed_with_sigkill_resumes_to_the_same_store(cli, onnx_teacher, tmp_path):
    out, ref = tmp_path / "killed", tmp_path / "ref"
    extra = ("--replicas", "8", "--shard-size", "4", "--batch-size", "4")  # 80 shards
    exe = shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")
    proc = subprocess.Popen([exe, *_args(onnx_teacher, out, *extra)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    listed = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            listed = len(json.loads((out / "manifest.json").read_text())["shards"])
        except (OSError, ValueError, KeyError):
            listed = 0
        if listed >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode() if proc.stderr else ""
    before = _shards(out)
    assert 3 <= len(before) < 80
    r = cli(*_args(onnx_teacher, out, *extra, "--json"))
    assert r.code == 0, r.err
    assert r.json()["shards_resumed"] >= 3 and r.json()["shards"] == 80
    after = _shards(out)
    assert all(after[n] == h for n, h in before.items())
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", *sorted(after)]  # no temporary files left
    assert cli(*_args(onnx_teacher, ref, *extra, "--json")).code == 0
    assert after == _shards(ref)


@pytest.mark.parametrize(
    "extra, msg",
    [
        (("--replicas", "0"), "--replicas"),
        (("--resolution", "32"), "takes 16 px images; the data (builtin:4) is at 32 px"),
        (("--teacher-mean", "0.5,0.5,0.5"), "--teacher-mean and --teacher-std together"),
        (("--teacher-mean", "0.5,x,0.5", "--teacher-std", "1,1,1"), "--teacher-mean"),
        (("--teacher-std", "0.5,0,0.5", "--teacher-mean", "1,1,1"), "teacher std must be > 0"),
        (("--val-fraction", "0"), "--val-fraction must be > 0"),
        (("--batch-size", "0"), "--batch-size"),
    ],
)
def test_bad_options_are_one_line_errors_before_anything_is_written(cli, onnx_teacher, tmp_path, extra, msg):
    out = tmp_path / "s"
    r = cli(*_args(onnx_teacher, out, *extra))
    assert r.code == 2 and msg in r.err and r.err.strip().count("\n") == 0, r.err
    assert not out.exists()


def test_bad_teachers_and_data(cli, onnx_teacher, tmp_path):
    for teacher, msg in [
        ("model.bin", "expected a 'mnv4-nas train' output folder"),
        ("model.pt", "no such trained model"),
        ("none.onnx", "no such ONNX teacher"),
        ("supernet:none.pt@res32", "no such supernet checkpoint none.pt"),
        ("supernet:x", "expected supernet:CKPT@ARCH"),
    ]:
        r = cli("distill-data", "--teacher", teacher, "--data", "builtin:4", "--out", str(tmp_path / "s"))
        assert r.code == 2 and msg in r.err and r.err.strip().count("\n") == 0, r.err
    store = tmp_path / "store"
    assert cli(*_args(onnx_teacher, store, "--aug", "none", "--json")).code == 0
    before = _shards(store)
    r = cli(*_args(onnx_teacher, store, "--aug", "mixup"))
    assert r.code == 2 and "another --aug (none there, mixup now)" in r.err
    r = cli("distill-data", "--teacher", str(onnx_teacher), "--data", str(store), "--out", str(tmp_path / "t"))
    assert r.code == 2 and "is a distillation store" in r.err
    assert _shards(store) == before and not (tmp_path / "s").exists()


SPACE = """
name = "distill-tiny"
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
"""


def test_a_supernet_member_teaches(cli, write_space, tmp_path):
    from nas.space import load_space_file
    from nas.supernet import largest_arch, member_model

    space = write_space("distill-tiny", SPACE)
    ckpt = tmp_path / "sn.pt"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(space),
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--out",
        str(ckpt),
        "--threads",
        "1",
        "--max-steps",
        "1",
        "--json",
    )
    assert r.code == 0, r.err
    arch = largest_arch(load_space_file(space)).arch
    member = member_model(ckpt, parse_arch(arch))
    pt = tmp_path / "m.pt"
    assert cli("supernet", "extract", str(ckpt), arch, "--output", str(pt)).code == 0
    saved = torch.load(pt, weights_only=True)
    net = build_model(parse_arch(saved["arch"]))
    net.load_state_dict(saved["state_dict"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(member.model(x), net.eval()(x), atol=1e-5)  # what 'supernet extract' writes
    assert member.resolution == 32 and member.mean == tuple(saved["mean"]) and len(member.classes) == 10
    out = tmp_path / "store"
    r = cli(
        "distill-data",
        "--teacher",
        f"supernet:{ckpt}@{arch}",
        "--data",
        "builtin:4",
        "--out",
        str(out),
        "--aug",
        "mixup",
        "--threads",
        "1",
        "--json",
    )
    assert r.code == 0, r.err
    t = r.json()["teacher"]
    assert t["kind"] == "module" and t["arch"] == member.arch.arch and len(t["checkpoint_sha256"]) == 64
    r = cli(
        "distill-data",
        "--teacher",
        f"supernet:{ckpt}@{arch}",
        "--data",
        "builtin:4",
        "--out",
        str(out),
        "--teacher-norm",
        "data",
    )
    assert r.code == 2 and "apply to ONNX teachers only" in r.err


def test_supernet_trains_on_a_store_and_scores_on_its_source_data(cli, onnx_teacher, conv_space_path, tmp_path):
    store = tmp_path / "store"
    assert cli(*_args(onnx_teacher, store, "--aug", "none", "--json")).code == 0
    ckpt = tmp_path / "s.pt"
    r = cli(
        "supernet",
        "train",
        "--space",
        str(conv_space_path),
        "--data",
        str(store),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--out",
        str(ckpt),
        "--json",
    )
    assert r.code == 0, r.err
    from nas.supernet import load_supernet_estimator, smallest_arch

    meta = torch.load(ckpt, weights_only=True)["meta"]
    assert json.loads(meta)["resolution"] == 16  # the store's, without --resolution
    est = load_supernet_estimator(ckpt)  # reloads the held-out split of the store's source data
    acc = est.score([smallest_arch(est.search_space)])[0]
    assert 0.0 <= acc <= 1.0 and len(est.data.val_y) > 0
