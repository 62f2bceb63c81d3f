"""``mnv4-nas train`` and ``mnv4-nas eval``: outputs, resume, torchrun, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from nas.train import load_trained, read_checkpoint

ARCH = "res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s2_e2_c16|uir_r1_a0_k3_s2_e2_c24|head_c32_cls10"
DATA = "builtin:12"  # 120 training and 200 held-out images
FAST = ["--data", DATA, "--batch-size", "20", "--threads", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from nas.cli import main

    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", ARCH, *FAST, "--epochs", "1", "--out", str(out), "--json"]) == 0
    return out


def test_train_json_lists_the_outputs(cli, run_dir, tmp_path):
    r = cli("train", ARCH, *FAST, "--epochs", "1", "--out", str(tmp_path / "r"), "--json", "--no-ema", "--lr", "0.003")
    assert r.code == 0, r.err
    doc = r.json()  # stdout is exactly one JSON document
    assert doc["epochs_done"] == 1 and doc["results"]["weights"] == "raw" and len(doc["history"]) == 1
    for key in ("weights", "onnx", "metrics", "curves", "summary", "run", "spec", "checkpoint"):
        assert os.path.isfile(doc["files"][key]), key
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["recipe"]["lr"] == 0.003 and run["recipe"]["ema"] is False and run["data"]["spec"] == DATA


def test_rerun_resumes_and_a_changed_recipe_is_refused(cli, run_dir):
    again = cli("train", ARCH, *FAST, "--epochs", "2", "--out", str(run_dir))
    assert again.code == 0, again.err
    assert "epoch 2:" in again.out and "epoch 1:" not in again.out  # continued after the finished epoch
    assert read_checkpoint(run_dir / "checkpoint.pt", "mnv4-nas-train", 1, "training")["meta"]["epochs_done"] == 2
    bad = cli("train", ARCH, *FAST, "--epochs", "3", "--out", str(run_dir), "--label-smoothing", "0.2")
    assert bad.code == 2 and bad.err.count("\n") == 1
    assert "label_smoothing = 0.1 (now 0.2)" in bad.err and "--no-resume" in bad.err


def test_eval_prints_top1_top5_and_writes_the_confusion_matrix(cli, run_dir, tmp_path):
    r = cli("eval", str(run_dir), "--data", DATA, "--out", str(tmp_path / "e"))
    assert r.code == 0, r.err
    assert "top-1" in r.out and "top-5" in r.out
    png = tmp_path / "e" / "confusion.png"
    assert png.read_bytes()[:4] == b"\x89PNG"
    doc = json.loads((tmp_path / "e" / "eval.json").read_text())
    assert doc["images"] == 200 and len(doc["confusion"]) == 10 and sum(map(sum, doc["confusion"])) == 200
    j = cli(
        "eval",
        str(run_dir / "model.safetensors"),
        "--data",
        DATA,
        "--split",
        "train",
        "--out",
        str(tmp_path / "t"),
        "--json",
    )
    assert j.code == 0 and j.json()["images"] == 120 and 0 <= j.json()["top1"] <= j.json()["top5"] <= 1


def test_eval_refuses_data_with_other_classes(cli, run_dir, tmp_path):
    import numpy as np

    p = tmp_path / "three.npz"
    np.savez(p, images=np.zeros((30, 32, 32, 3), np.uint8), labels=np.arange(30) % 3)
    r = cli("eval", str(run_dir), "--data", str(p), "--out", str(tmp_path / "e"))
    assert r.code == 2 and r.err.count("\n") == 1 and "3 classes" in r.err and "trained on 10" in r.err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--lr", "0"], "--lr must be > 0"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--warmup", "1"], "--warmup must be < 1"),
        (["--ema-decay", "1"], "--ema-decay must be < 1"),
        (["--batch-size", "1"], "--batch-size must be at least 2"),
        (["--resolution", "4"], "--resolution must be at least 8"),
        (["--aug", "cutmix"], "--aug must be one of"),
        (["--amp", "fp8"], "--amp must be one of"),
        (["--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
        (["--data", "nope/missing"], "no such file"),
        (["--aug", ""], "--aug must be one of"),  # '' is not the default
        (["--lr", "1e9"], "--lr must be <= 10"),
        (["--seed", "99999999999"], "--seed must be at most"),
    ],
)
def test_bad_options_are_one_line_errors(cli, tmp_path, args, msg):
    r = cli("train", ARCH, "--out", str(tmp_path / "o"), *args)
    assert r.code == 2 and msg in r.err and r.err.count("\n") == 1 and "Traceback" not in r.err
    assert not (tmp_path / "o").exists()


def test_bad_arch_config_and_output_folder(cli, tmp_path):
    assert "neither a zoo model" in cli("train", "no-such-model").err
    f = tmp_path / "file"
    f.write_text("x")
    r = cli("train", ARCH, "--out", str(f / "sub"))
    assert r.code == 2 and "--out" in r.err
    cfg = tmp_path / "nas.toml"
    cfg.write_text("[train]\nlr = 0.0\n")
    r = cli("--config", str(cfg), "train", ARCH, "--out", str(tmp_path / "o"))
    assert r.code == 2 and "train.lr" in r.err and str(cfg) in r.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_cpu_only_torch_is_a_one_line_error(cli, tmp_path):
    r = cli("train", ARCH, "--device", "cuda", "--out", str(tmp_path / "o"))
    assert r.code == 2 and "no CUDA device" in r.err and r.err.count("\n") == 1
    r = cli("train", ARCH, "--amp", "bf16", "--out", str(tmp_path / "o"))
    assert r.code == 2 and "--amp bf16 needs a CUDA device" in r.err and not (tmp_path / "o").exists()


def test_an_arch_string_longer_than_a_file_name(cli, tmp_path):
    body = "|".join(["uir_r1_a3_k3_s1_e2_c8"] * 20)
    arch = f"res32|cn_r1_k3_s2_c8|{body}|head_c16_cls10"
    assert len(arch) > 255
    r = cli("train", arch, *FAST, "--epochs", "1", "--max-steps", "1", "--out", str(tmp_path / "long"), "--json")
    assert r.code == 0, r.err
    assert load_trained(tmp_path / "long").spec.arch == arch


def _exe() -> str:
    return shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")


@pytest.mark.slow
def test_kill_9_then_rerun_resumes(tmp_path):
    out = tmp_path / "k"
    base = [_exe(), "train", ARCH, *FAST, "--out", str(out), "--json"]
    cmd = [*base, "--epochs", "200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = out / "checkpoint.pt"
    try:
        deadline = time.time() + 240
        while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ckpt.exists(), proc.stderr.read().decode() if proc.poll() is not None else "no checkpoint in time"
        time.sleep(0.7)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = read_checkpoint(ckpt, "mnv4-nas-train", 1, "training")["meta"]["epochs_done"]
    assert done >= 1
    r = subprocess.run([*base, "--epochs", str(done + 1)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["resumed_from_epoch"] == done and doc["epochs_done"] == done + 1


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        _exe(),
        "train",
        ARCH,
        "--data",
        "builtin:16",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--json",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(p.stdout)  # rank 0 prints the one JSON document; the default folder is rank 0's
    out = tmp_path / doc["out"]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["epochs_done"] == 1 and len(list((tmp_path / "results").iterdir())) == 1
    h = doc["history"][0]  # 160 images, 2 processes x 16 per step: 5 steps of 32 images
    assert round(h["images_per_s"] * h["seconds"]) == 160
    assert load_trained(out).num_classes == 10


def test_repo_nas_toml_train_section_equals_the_defaults():
    from pathlib import Path

    from nas.config import Config, TrainingConfig, load_config

    root = Path(__file__).resolve().parents[2]
    assert load_config(root / "nas.toml").train == Config().train == TrainingConfig()


@pytest.fixture(scope="module")
def store(run_dir, tmp_path_factory):
    """A distillation store labelled by the trained run (a train output folder as the teacher)."""
    from nas.cli import main

    out = tmp_path_factory.mktemp("store") / "s"
    args = [
        "distill-data",
        "--teacher",
        str(run_dir),
        "--data",
        DATA,
        "--aug",
        "none",
        "--out",
        str(out),
        "--threads",
        "1",
    ]
    assert main([*args, "--json"]) == 0
    return out


def test_train_distils_from_mixed_stores_with_the_flip_recipe(cli, store, tmp_path):
    r = cli(
        "train",
        ARCH,
        "--distill",
        f"{store}:3",
        "--distill",
        str(store),
        "--batch-size",
        "20",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "d"),
        "--json",
    )
    assert r.code == 0, r.err
    run = json.loads((tmp_path / "d" / "run.json").read_text())
    assert run["recipe"]["augment"] == "flip"  # the paper's student recipe
    assert run["data"]["identity"]["kind"] == "distill-mix"
    assert [s["ratio"] for s in run["data"]["stores"]] == [3.0, 1.0]
    assert r.json()["results"]["val_acc"] is not None  # held out: the store's source data
    again = cli(
        "train",
        ARCH,
        "--distill",
        f"{store}:3",
        "--distill",
        str(store),
        "--batch-size",
        "20",
        "--threads",
        "1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "d"),
    )
    assert again.code == 0 and "already holds 1 finished epochs" in again.out


def test_online_teacher_from_a_train_folder_is_recorded(cli, run_dir, tmp_path):
    r = cli("train", ARCH, *FAST, "--teacher", str(run_dir), "--epochs", "1", "--out", str(tmp_path / "o"))
    assert r.code == 0, r.err
    assert "teacher (online)" in r.out
    teacher = json.loads((tmp_path / "o" / "run.json").read_text())["teacher"]
    assert teacher["kind"] == "module" and len(teacher["sha256"]) == 64 and teacher["arch"].endswith("cls10")


@pytest.mark.parametrize(
    "value", ["{store}:-1", "{store}:abc", "{store}:0", "{store}:nan", "{store}:inf", "{tmp}/none"]
)
def test_bad_distill_values_are_one_line_errors(cli, store, tmp_path, value):
    r = cli("train", ARCH, "--distill", value.format(store=store, tmp=tmp_path), "--out", str(tmp_path / "x"))
    assert r.code == 2 and r.err.count("\n") == 1 and ("--distill" in r.err or "store" in r.err), r.err
    assert not (tmp_path / "x").exists()


def test_distill_with_data_or_teacher_is_refused(cli, store, run_dir, tmp_path):
    for extra in (["--data", DATA], ["--teacher", str(run_dir)]):
        r = cli("train", ARCH, "--distill", str(store), *extra, "--out", str(tmp_path / "x"))
        assert r.code == 2 and "--distill" in r.err and r.err.count("\n") == 1


def test_garbage_weights_are_one_line_errors(cli, tmp_path):
    """torch.load meets random bytes with IndexError and the like: still one line, naming the file."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(256)) * 3)
    for argv in (["eval", str(junk), "--data", DATA], ["train", ARCH, *FAST, "--teacher", str(junk)]):
        r = cli(*argv, "--out", str(tmp_path / "o"))
        assert r.code == 2 and "junk.pt" in r.err and r.err.count("\n") == 1, r.err
