"""The CLI against bad input (issue 24): every case is a clean one-line error with exit code 2 or a
correct result, never an internal error, a traceback or a hang. Cases that could block (FIFOs,
devices) run in one subprocess with a timeout; the rest run in-process. Numeric options are fuzzed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tiny_spaces import CONV_SPACE

from nas.resources import data_dir
from nas.supernet._checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from nas.zoo import get_spec

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SMALL = get_spec("mnv4-conv-small").arch
LARGE = get_spec("mnv4-hybrid-large").arch
TINY = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|head_c32_h48_cls10"


def clean(r, *needles: str) -> str:
    """The one error line of a refused input (exit 2, no internal error), checked to name ``needles``."""
    assert r.code == 2, (r.code, r.err)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mnv4-nas: error:"), r.err
    assert "internal error" not in r.err and "Traceback" not in r.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad and good input files, written once."""
    d = tmp_path_factory.mktemp("fuzz-cli")
    (d / "space.toml").write_text(CONV_SPACE)
    (d / "afile").write_text("a file\n")
    (d / "adir").mkdir()
    (d / "adir" / "keep").write_text("keep")
    for sfx in ("json", "toml", "csv", "pt", "npz"):
        os.mkfifo(d / f"fifo.{sfx}")
    (d / "journal.txt").write_text("not a journal\n")
    table = (data_dir("latency_tables") / "pixel6-cpu.csv").read_text()
    for name, text in (("nan", "nan"), ("neg", "-1")):
        (d / f"t-{name}").mkdir()
        (d / f"t-{name}" / "pixel6-cpu.csv").write_text(
            re.sub(r"^# overhead_ms: .*$", f"# overhead_ms: {text}", table, flags=re.M)
        )
        (d / f"cfg-{name}.toml").write_text(f"[latency]\ntables_dir = {json.dumps(str(d / f't-{name}'))}\n")
    (d / "cfg-tables-file.toml").write_text(f"[latency]\ntables_dir = {json.dumps(str(d / 'afile'))}\n")
    (d / "cfg-seed.toml").write_text("[project]\nseed = -1\n")
    (d / "models.csv").write_text(
        f"model_or_spec,latency_ms\n{SMALL},1.5\n{LARGE},9\nmnv4-conv-medium,3\nmnv4-conv-large,6\n"
    )
    (d / "t-fm").mkdir()
    (d / "cfg-fm.toml").write_text(f"[latency]\ntables_dir = {json.dumps(str(d / 't-fm'))}\n")
    raw_npz = d / "good.npz"
    np.savez(raw_npz, images=np.zeros((8, 8, 8, 3), np.uint8), labels=np.arange(8) % 2)
    (d / "truncated.npz").write_bytes(raw_npz.read_bytes()[:200])
    _huge_npz(d / "huge.npz")
    return {p.name: str(p) for p in d.iterdir()} | {"dir": str(d)}


def _huge_npz(path: Path) -> None:
    import io
    import struct
    import zipfile

    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000, 1), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16)
        buf = io.BytesIO()
        np.save(buf, np.arange(4))
        z.writestr("labels.npy", buf.getvalue())


# ------------------------------------------------------------------------------------------------
# things that could block: one subprocess, one timeout
# ------------------------------------------------------------------------------------------------

_BATCH = r"""
import contextlib, io, json, sys
from nas.cli import main
for argv in json.loads(sys.argv[1]):
    print(json.dumps({"start": argv}), flush=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    print(json.dumps({"argv": argv, "code": code, "err": err.getvalue()}), flush=True)
"""


def test_fifos_and_devices_never_block(files, tmp_path):
    f = files
    cases = [
        ["show", f["fifo.json"]],
        ["show", "/dev/zero"],
        ["export", f["fifo.json"], "-f", "json"],
        ["latency", "predict", "--spec", f["fifo.toml"], "--target", "pixel6-cpu"],
        ["space", "show", f["fifo.toml"]],
        ["space", "show", "/dev/zero"],
        ["space", "sample", f["fifo.toml"]],
        ["search", "--space", f["fifo.toml"], "--target", "pixel6-cpu", "--budget", "5ms"],
        [f"--config={f['fifo.toml']}", "zoo"],
        ["--config=/dev/zero", "zoo"],
        ["latency", "import", f["fifo.csv"], "--target", "s23-gpu"],
        ["latency", "import", "--from-models", f["fifo.csv"], "--target", "s23-gpu"],
        ["supernet", "info", f["fifo.pt"]],
        ["supernet", "info", f["fifo.json"]],
        ["supernet", "eval", "/dev/zero", "--sample", "1"],
        ["supernet", "train", "--space", f["space.toml"], "--data", f["fifo.npz"], "--out", str(tmp_path / "x.pt")],
        ["search", "--space", f["space.toml"], "--target", "pixel6-cpu", "--budget", "5ms", "--storage", f["fifo.csv"]],
    ]
    env = {**os.environ, "MNV4NAS_CACHE": str(tmp_path / "cache")}
    env.pop("MNV4NAS_DEBUG", None)
    try:
        p = subprocess.run(
            [sys.executable, "-c", _BATCH, json.dumps(cases)],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        started = [json.loads(line) for line in out.splitlines() if line.startswith('{"start"')]
        pytest.fail(f"hangs on: mnv4-nas {' '.join(started[-1]['start']) if started else '?'}")
    assert p.returncode == 0, p.stderr
    results = [json.loads(line) for line in p.stdout.splitlines() if line.startswith('{"argv"')]
    assert len(results) == len(cases)
    for r in results:
        lines = [ln for ln in r["err"].splitlines() if ln.strip()]
        assert r["code"] == 2 and len(lines) == 1 and "mnv4-nas: error:" in lines[0], r
        assert re.search("regular file|FIFO|character device", lines[0]), r


# ------------------------------------------------------------------------------------------------
# long arch strings: a correct result everywhere one is taken
# ------------------------------------------------------------------------------------------------


def test_long_arch_strings_work_everywhere(cli, files, tmp_path):
    assert len(SMALL) > 255 and len(LARGE) > 1000
    assert cli("show", SMALL).code == 0
    r = cli("show", LARGE, "--json")
    assert r.code == 0 and r.json()["arch"] == LARGE
    r = cli("export", SMALL, "-f", "json")
    assert r.code == 0 and json.loads(r.out)["arch"] == SMALL
    assert cli("export", LARGE, "-f", "timm", "-o", str(tmp_path / "l.txt")).code == 0
    r = cli("latency", "predict", "--spec", SMALL, "--target", "pixel6-cpu", "--json")
    assert r.code == 0 and r.json()["latency_ms"] > 0
    parts = [
        "res32",
        "cn_r1_k3_s2_c8",
        "cn_r1_k3_s1_c8",
        "er_r1_k3_s1_e2_c16",
        "er_r1_k3_s1_e2_c16",
        "uir_r1_a5_k5_s2_e4_c24",
        "uir_r1_a5_k5_s1_e4_c24",
        "uir_r1_a5_k5_s2_e4_c32",
        "uir_r1_a5_k5_s1_e4_c32",
        "uir_r1_a5_k5_s1_e4_c32",
        "head_c32_h48_cls10",
    ]
    member = "   |   ".join(parts)  # a member of the space, spaced out past 255 characters
    assert len(member) > 255
    r = cli("space", "sample", files["space.toml"], "--stage", "fine", "--coarse", member, "--n", "1", "--json")
    assert r.code == 0, r.err
    r = cli(
        f"--config={files['cfg-fm.toml']}",
        "latency",
        "import",
        "--from-models",
        files["models.csv"],
        "--target",
        "s23-gpu",
        "--json",
    )
    assert r.code == 0, r.err


@pytest.mark.parametrize(
    "text",
    [
        SMALL.replace("|uir", "\n|uir", 1),
        SMALL.replace("|", "\t|", 1),
        "res" + "2" * 5000 + "|cn_r1_k3_s2_c8|head_cls10",
        "res224|cn_r1_k3_s2_c32|" + "|".join(["uir_r64_a3_k3_s1_e4_c32"] * 2000) + "|head_cls10",
    ],
)
def test_malformed_arch_strings(cli, text):
    clean(cli("show", text), "arch")


# ------------------------------------------------------------------------------------------------
# output paths
# ------------------------------------------------------------------------------------------------


def test_output_paths_are_checked_before_work(cli, files, tmp_path):
    under = files["afile"] + "/x"
    clean(cli("export", "mnv4-conv-small", "-f", "json", "-o", files["adir"]), "is a directory")
    clean(cli("export", "mnv4-conv-small", "-f", "json", "-o", under + ".json"), "not a folder")
    clean(cli("export", "mnv4-conv-small", "-f", "json", "-o", "/dev/full"), "not a regular file")
    clean(cli("export", TINY, "-f", "onnx", "-o", files["adir"]), "is a directory")
    clean(cli("export", "mnv4-conv-small", "-f", "json", "-o", str(tmp_path / ("n" * 300))), "longer than 255")
    clean(
        cli("search", "--space", files["space.toml"], "--target", "pixel6-cpu", "--budget", "5ms", "--out", under),
        "--out",
    )
    clean(
        cli("supernet", "train", "--space", files["space.toml"], "--data", "builtin:4", "--out", files["adir"]), "--out"
    )
    clean(cli("latency", "bundle", "--target", "s23-gpu", "--no-zoo", "--model", TINY, "-o", under), "--output")
    assert Path(files["afile"]).read_text() == "a file\n" and os.listdir(files["adir"]) == ["keep"]


def test_an_unwritable_place_is_a_one_line_error(cli, tmp_path):
    if not Path("/proc/self").exists():
        pytest.skip("no /proc")
    clean(cli("export", "mnv4-conv-small", "-f", "json", "-o", "/proc/mnv4nas-x.json"), "/proc/mnv4nas-x.json")


# ------------------------------------------------------------------------------------------------
# options that reached a library unchecked, and values that silently meant "default"
# ------------------------------------------------------------------------------------------------

SEARCH = ["search", "--target", "pixel6-cpu", "--budget", "5ms", "--estimator", "params", "--fallback", "roofline"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--trials", "0", "--one-stage"], "--trials"),
        (["--trials", "0"], "--trials"),
        (["--coarse-trials", "0"], "--coarse-trials"),
        (["--fine-trials", "-1"], "--fine-trials"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**32)], "--seed"),
        (["--beta", "nan"], "--beta"),
        (["--beta", "-inf"], "--beta"),
        (["--target", ""], "--target"),
        (["--budget", ""], "--budget"),
        (["--estimator", ""], "--estimator"),
        (["--study", ""], "--study"),
        (["--ray-address", "ray://127.0.0.1:1"], "client extra"),
        (["--storage", "JOURNAL"], "not an optuna journal"),
        (["--storage", "ADIR"], "is a directory"),
        (["--coarse-top", "0"], "--coarse-top"),
    ],
)
def test_search_options(cli, files, tmp_path, extra, needle):
    if importlib_util_find("grpc") and "client extra" in needle:
        pytest.skip("Ray's client extra is installed here")
    extra = [{"JOURNAL": files["journal.txt"], "ADIR": files["adir"]}.get(a, a) for a in extra]
    clean(cli(*SEARCH, "--space", files["space.toml"], *extra, "--out", str(tmp_path / "run")), needle)
    assert not (tmp_path / "run").exists()
    assert Path(files["journal.txt"]).read_text() == "not a journal\n"


def importlib_util_find(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


TRAIN = ["supernet", "train", "--epochs", "1", "--batch-size", "8", "--max-steps", "1"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--lr", "0"], "--lr"),
        (["--lr", "inf"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--beta", "nan"], "--beta"),
        (["--beta", "inf"], "--beta"),
        (["--data", ""], "--data"),
        (["--seed", "-1"], "--seed"),
        (["--device", "tpu9"], "--device"),
        (["--target", "", "--sampler", "tunas"], "--target"),
        (["--space", ""], "--space"),
    ],
)
def test_supernet_train_options(cli, files, tmp_path, extra, needle):
    data = [] if "--data" in extra else ["--data", "builtin:4"]
    clean(cli(*TRAIN, *data, "--space", files["space.toml"], "--out", str(tmp_path / "s.pt"), *extra), needle)
    assert not (tmp_path / "s.pt").exists()


def test_cuda_on_a_cpu_only_torch(cli, files, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this torch sees a CUDA device")
    clean(
        cli(
            *TRAIN,
            "--data",
            "builtin:4",
            "--space",
            files["space.toml"],
            "--out",
            str(tmp_path / "s.pt"),
            "--device",
            "cuda",
        ),
        "CUDA",
    )


def test_other_options(cli, files):
    clean(cli("export", TINY, "-f", "onnx", "--opset", "1000", "-o", files["dir"] + "/x.onnx"), "--opset")
    clean(cli("export", TINY, "-f", "onnx", "--opset", "16", "-o", files["dir"] + "/x.onnx"), "--opset")
    clean(cli("space", "sample", files["space.toml"], "--seed", "-1"), "--seed")
    clean(cli(f"--config={files['cfg-seed.toml']}", "space", "sample", files["space.toml"]), "project.seed")
    clean(cli("latency", "predict", "--model", "mnv4-conv-small", "--target", ""), "--target")
    for v in ("-1", "nan", "inf"):
        clean(cli("latency", "import", files["models.csv"], "--target", "s23-gpu", "--cache-mib", v), "--cache-mib")


@pytest.mark.parametrize("name", ["nan", "neg"])
def test_tables_with_nonsense_overheads(cli, files, name):
    clean(
        cli(
            f"--config={files[f'cfg-{name}.toml']}",
            "latency",
            "predict",
            "--model",
            "mnv4-conv-small",
            "--target",
            "pixel6-cpu",
        ),
        "overhead_ms",
    )


def test_a_tables_dir_that_is_a_file(cli, files):
    clean(cli(f"--config={files['cfg-tables-file.toml']}", "latency", "targets"), "tables_dir")


# ------------------------------------------------------------------------------------------------
# checkpoints, manifests and data
# ------------------------------------------------------------------------------------------------


def _meta(space_path: str) -> dict:
    from nas.space import load_space_file, space_meta

    return {
        "space": json.loads(json.dumps(space_meta(load_space_file(space_path)))),
        "resolution": 32,
        "num_classes": 2,
        "classes": ["a", "b"],
        "data": {"spec": "builtin:4", "val_fraction": 0.1, "split_seed": 0},
        "epochs_done": 1,
        "config": {"seed": 0, "sampler": "sandwich"},
        "history": [],
        "world_size": 1,
    }


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda m: m.pop("space"), "space"),
        (lambda m: m.update(resolution="abc"), "resolution"),
        (lambda m: m["config"].update(seed="abc"), "config"),
        (lambda m: m.pop("data"), "data"),
        (lambda m: m["data"].update(val_fraction="x"), "data"),
        (lambda m: m.update(classes=5), "classes"),
        (lambda m: m.update(history="x"), "history"),
        (lambda m: m["space"].update(phase="x"), "space.phase"),
    ],
)
def test_corrupt_checkpoint_metadata(cli, files, tmp_path, edit, needle):
    meta = _meta(files["space.toml"])
    edit(meta)
    p = tmp_path / "ck.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "meta": json.dumps(meta), "model": {}}, p)
    for args in (["supernet", "info", str(p)], ["supernet", "eval", str(p), "--sample", "1"]):
        clean(cli(*args), "corrupt checkpoint metadata", needle)


def test_corrupt_manifest(cli, tmp_path):
    p = tmp_path / "few.json"
    p.write_text(
        json.dumps(
            {
                "format": "mnv4-nas few-shot supernet",
                "version": 1,
                "split": "stage1.channels",
                "space": {},
                "shots": [{"label": "a", "checkpoint": "a.pt"}],
            }
        )
    )
    clean(cli("supernet", "info", str(p)), "malformed few-shot manifest")


@pytest.mark.parametrize("name, needle", [("truncated.npz", "cannot read .npz"), ("huge.npz", "declares shape")])
def test_bad_npz(cli, files, tmp_path, name, needle):
    clean(cli(*TRAIN, "--space", files["space.toml"], "--data", files[name], "--out", str(tmp_path / "s.pt")), needle)


# ------------------------------------------------------------------------------------------------
# fuzzed numeric options
# ------------------------------------------------------------------------------------------------

_BAD_FLOATS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e309", "-0", "0", "-1e-300"]),
    st.floats(max_value=0, allow_subnormal=False).map(repr),
)


@FUZZ
@given(lr=_BAD_FLOATS)
def test_fuzzed_learning_rates_are_refused_before_training(cli, files, lr):
    clean(
        cli(
            *TRAIN,
            "--data",
            "builtin:4",
            "--space",
            files["space.toml"],
            "--lr",
            lr,
            "--out",
            files["dir"] + "/never.pt",
        ),
        "--lr",
    )


@FUZZ
@given(
    n=st.integers(-(10**20), 0),
    option=st.sampled_from(["--trials", "--coarse-trials", "--fine-trials", "--coarse-top"]),
)
def test_fuzzed_trial_counts(cli, files, n, option):
    extra = [option, str(n)] + (["--one-stage"] if option == "--trials" else [])
    clean(cli(*SEARCH, "--space", files["space.toml"], *extra, "--out", files["dir"] + "/never"), option)


@FUZZ
@given(opset=st.one_of(st.integers(-(10**30), 16), st.integers(24, 10**30)))
def test_fuzzed_opsets(cli, files, opset):
    clean(cli("export", TINY, "-f", "onnx", "--opset", str(opset), "-o", files["dir"] + "/never.onnx"), "--opset")


@FUZZ
@given(seed=st.one_of(st.integers(-(10**30), -1), st.integers(2**32, 10**30)))
def test_fuzzed_seeds(cli, files, seed):
    clean(cli("space", "sample", files["space.toml"], "--seed", str(seed)), "--seed")
