"""The bad-input campaign of issue 24: malformed inputs on every command and input surface, run
through the CLI one subprocess each, classified by what the user sees.

    python benchmarks/bad_input_campaign.py [--root CODE_ROOT] [--out DIR] [--jobs 2] [--only REGEX] [--subprocess]

``--root`` is the source checkout whose ``nas`` package runs (default: this one), so the same cases
can be run against another branch (e.g. a ``git worktree`` of main). Everything is generated in a
temporary work folder (specs, spaces, tables, catalogs, checkpoints, manifests, data, FIFOs); a
tiny supernet and a two-shot few-shot supernet are trained there first (~30 s). Each case runs with
a timeout and an address-space limit (``--mem-gib``), in a work folder whose ``nas.toml`` sends
results and latency tables into the temporary folder, never into the shipped ``latency_tables/``.

Each case is its own process. By default the process is forked from one that has already imported
``nas.cli`` and its heavy dependencies (torch, pandas, optuna, onnx), then runs ``nas.cli.main`` on
the case's arguments in its own session, working folder, environment and file descriptors: what a
user sees from ``mnv4-nas ARGS``, without paying a Python start and those imports per case (on a
loaded 2-core machine that is ~9 s a case). ``--subprocess`` runs ``python -c 'entry()'`` per case
instead (the same outcomes, several times slower).

Outcomes:

- ``clean``     exit 2 with one line on stderr (``mnv4-nas: error: …``)
- ``vague``     a clean error that does not name the input/field the case expects (``needle``)
- ``ok``        exit 0 on a valid (possibly odd) input
- ``refused``   a valid input refused with a clean error
- ``internal``  ``mnv4-nas: internal error: …`` (an uncaught exception)
- ``traceback`` a Python traceback on stderr
- ``silent``    exit 0 on nonsense
- ``hang``      still running at the timeout (killed)
- ``noisy``     a clean error plus other stderr lines
- ``other``     any other exit (e.g. killed by a signal)

When run as root, an ENOSPC case mounts a 64 KiB tmpfs inside the work folder (unmounted at the end).
Writes ``results.csv`` and ``results.json`` to ``--out`` and prints counts per outcome and per class
plus the table of cases that are neither clean nor ok.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BAD_OUTCOMES = ("internal", "traceback", "silent", "hang", "refused", "other", "noisy", "vague")

#: The tiny conv space the fuzz tests use (t-conv, 32 px), shipped once in tests/.
TINY_SPACE = (HERE.parent / "tests" / "tiny_conv_space.toml").read_text(encoding="utf-8")

HYBRID_SPACE = (
    TINY_SPACE.replace('name = "t-conv"', 'name = "t-hybrid"')
    + """
[[stages]]
kind = "uib"
stride = 1
channels = [40, 48]
depth = [2, 3]
[stages.attention]
slots = SLOTS
heads = 2
key_dim = 8
kv_stride = 1
"""
)

#: A member of TINY_SPACE (the largest) and an every-block-kind tiny arch (for ONNX export).
MEMBER = (
    "res32|cn_r1_k3_s2_c8|cn_r1_k3_s1_c8|er_r1_k3_s1_e2_c16|er_r1_k3_s1_e2_c16|uir_r1_a5_k5_s2_e4_c24|"
    "uir_r1_a5_k5_s1_e4_c24|uir_r1_a5_k5_s2_e4_c32|uir_r1_a5_k5_s1_e4_c32|uir_r1_a5_k5_s1_e4_c32|head_c32_h48_cls10"
)
TINY = (
    "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16_ls|mqa_r1_k3_h2_s1_v2_d8_c16_ls|"
    "ds_r1_k3_s2_c24|uir_r1_a3_k3_s2_e3_c32_nge|head_c64_h96_cls10"
)
KEYS = ("cn_r1_k3_s2_c8@32x32x3", "cn_r1_k3_s1_c8@16x16x8", "er_r1_k3_s1_e2_c16@16x16x8")


@dataclass
class Case:
    """One input tried through the CLI."""

    id: str
    klass: str  # the issue's class (e.g. "fifo", "arch-length", "table-meta")
    surface: str  # command / option / file kind
    argv: list[str]
    expect: str = "error"  # error | ok | any
    needle: str | None = None  # what a clean error should name
    timeout: float | None = None
    config: str | None = None  # --config path put before the command


@dataclass
class Outcome:
    """What a case did."""

    id: str
    klass: str
    surface: str
    expect: str
    outcome: str
    rc: int | None
    seconds: float
    message: str = ""
    argv: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


class Work:
    """The temporary work folder and the fixtures in it."""

    def __init__(self, root: Path, code: Path, mem_gib: float):
        self.root, self.code, self.mem = root, code, mem_gib
        self.bad = root / "bad"
        self.run = root / "run"
        self.out = root / "out"
        self.cfg = root / "cfg"
        self.tabs = root / "tabs"
        for d in (self.bad, self.run, self.out, self.cfg, self.tabs):
            d.mkdir(parents=True, exist_ok=True)
        self.full: Path | None = None
        self.env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "MNV4NAS_CACHE": str(root / "cache"),
            "COLUMNS": "200",
            "PYTHONWARNINGS": "ignore",
            "RAY_ADDRESS": "",
            "TERM": "dumb",
        }
        self.env.pop("MNV4NAS_DEBUG", None)
        self.env.pop("MNV4NAS_TEST_POSTGRES_URL", None)
        self.write_config(self.run / "nas.toml", {})

    def p(self, name: str) -> str:
        return str(self.root / name)

    def write_config(self, path: Path, sections: dict[str, dict[str, Any]]) -> Path:
        base: dict[str, dict[str, Any]] = {
            "project": {"output_dir": str(self.root / "results")},
            "latency": {"tables_dir": str(self.root / "tables")},
        }
        for sec, vals in sections.items():
            base.setdefault(sec, {}).update(vals)
        lines = []
        for sec, vals in base.items():
            lines.append(f"[{sec}]")
            lines += [f"{k} = {_toml(v)}" for k, v in vals.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def config(self, name: str, sections: dict[str, dict[str, Any]]) -> str:
        return str(self.write_config(self.cfg / f"{name}.toml", sections))

    def tables_config(self, name: str, files: dict[str, str | bytes]) -> str:
        """A config whose tables_dir holds ``files`` (a bad table or catalog)."""
        d = self.tabs / name
        d.mkdir(parents=True, exist_ok=True)
        for fname, content in files.items():
            (d / fname).write_bytes(content if isinstance(content, bytes) else content.encode())
        return self.config(name, {"latency": {"tables_dir": str(d)}})

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run the code root's CLI for setup (must succeed)."""
        p = subprocess.run(
            [sys.executable, "-c", _boot(self.mem), *args],
            cwd=self.run,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if p.returncode != 0:
            raise SystemExit(f"setup failed: mnv4-nas {' '.join(args)}\n{p.stderr}")
        return p


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if v != v else ("inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, RawToml):
        return v.text
    raise TypeError(type(v))


class RawToml:
    """TOML text written as is (huge integers, odd literals)."""

    def __init__(self, text: str):
        self.text = text


def _boot(mem_gib: float) -> str:
    limit = int(mem_gib * 2**30)
    return (
        f"import resource, sys; resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit})); "
        "sys.argv[0] = 'mnv4-nas'; from nas.cli import entry; entry()"
    )


def _png(width: int, height: int) -> bytes:
    """A PNG header declaring ``width`` x ``height`` (1-bit grey) with an empty image stream."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def make_fixtures(w: Work) -> dict[str, str]:
    """Every good and bad file the cases use; returns name → path."""
    import numpy as np
    import torch

    f: dict[str, str] = {}
    bad = w.bad

    def put(name: str, content: str | bytes) -> str:
        path = bad / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        f[name] = str(path)
        return str(path)

    # spaces and specs
    f["space"] = put("tconv.toml", TINY_SPACE)
    for fmt in ("json", "toml", "timm"):
        text = w.cli("export", "mnv4-conv-small", "--format", fmt).stdout
        f[f"spec.{fmt}"] = put(f"conv-small.{'txt' if fmt == 'timm' else fmt}", text)
    f["conv-small"] = json.loads(w.cli("show", "mnv4-conv-small", "--json").stdout)["arch"]
    f["hybrid-large"] = json.loads(w.cli("show", "mnv4-hybrid-large", "--json").stdout)["arch"]
    put("arch.txt", f["conv-small"] + "\n")
    # generic bad files, one per suffix
    for sfx in ("json", "toml", "txt", "csv", "pt", "npz"):
        fifo = bad / f"fifo.{sfx}"
        if not fifo.exists():
            os.mkfifo(fifo)
        f[f"fifo.{sfx}"] = str(fifo)
        d = bad / f"adir.{sfx}"
        d.mkdir(exist_ok=True)
        f[f"dir.{sfx}"] = str(d)
        f[f"missing.{sfx}"] = str(bad / f"missing.{sfx}")
        put(f"binary.{sfx}", bytes(range(256)) * 64)
        put(f"empty.{sfx}", b"")
        put(f"nonutf8.{sfx}", b"\xff\xfe\x00 r\xe9s\xe9 \x80\x81")
    put("deep.json", "[" * 100_000 + "]" * 100_000)
    put("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    put("deepobj.json", '{"a":' * 50_000 + "1" + "}" * 50_000)
    put("bigint.json", '{"resolution": ' + "9" * 5000 + "}")
    put("bigint.toml", "resolution = " + "9" * 5000 + "\n")
    put("bigint.txt", "res" + "2" * 5000 + "|cn_r1_k3_s2_c8|head_cls10")
    put("nan.json", '{"resolution": NaN, "stem": "cn_r1_k3_s2_c8", "blocks": [], "head": "head_cls10"}')
    put("huge.txt", b"x" * (70 * 2**20))
    put("layers.txt", "res224|cn_r1_k3_s2_c32|" + "|".join(["uir_r64_a3_k3_s1_e4_c32"] * 20_000) + "|head_cls10")
    put(
        "blocks5k.json",
        json.dumps(
            {
                "resolution": 224,
                "stem": "cn_r1_k3_s2_c32",
                "head": "head_cls10",
                "blocks": ["uir_r1_a3_k3_s1_e4_c32"] * 5000,
            }
        ),
    )
    f["regular"] = put("afile", "just a file\n")
    (w.root / "existing_dir").mkdir(exist_ok=True)
    (w.root / "existing_dir" / "keep.txt").write_text("keep")
    f["existing_dir"] = str(w.root / "existing_dir")
    # spaces with nonsense
    put("slots.toml", HYBRID_SPACE.replace("SLOTS", "9"))
    put("slots_ok.toml", HYBRID_SPACE.replace("SLOTS", "2"))
    put("coarse_k9.toml", TINY_SPACE + '\n[coarse]\nblock = "a9_k3_e4"\n')
    put("coarse_k7.toml", TINY_SPACE.replace("[fine]", '[coarse]\nblock = "a7_k7_e4"\n\n[fine]'))
    put("coarse_e0.toml", TINY_SPACE.replace("[fine]", '[coarse]\nblock = "a3_k3_e0"\n\n[fine]'))
    put("space_nan.toml", TINY_SPACE.replace("expansion = 2", "expansion = nan"))
    put("space_inf.toml", TINY_SPACE.replace("expansion = [2, 4]", "expansion = [2, inf]"))
    put("space_crlf.toml", TINY_SPACE.replace("\n", "\r\n"))
    put("space_bigdepth.toml", TINY_SPACE.replace("depth = [1, 3]", "depth = [1, " + "9" * 5000 + "]"))
    put("space_deepkey.toml", TINY_SPACE + "\n[extra]\n" + "x = " + "[" * 5000 + "]" * 5000 + "\n")
    # data
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    np.savez(bad / "good.npz", images=x, labels=y)
    f["good.npz"] = str(bad / "good.npz")
    raw = (bad / "good.npz").read_bytes()
    put("truncated.npz", raw[: len(raw) // 2])
    np.savez(bad / "object.npz", images=np.array([object()] * 4, dtype=object), labels=np.arange(4))
    np.savez(bad / "nanfloat.npz", images=np.full((8, 8, 8, 3), np.nan, dtype=np.float32), labels=np.arange(8) % 2)
    np.savez(bad / "oneclass.npz", images=x, labels=np.zeros(40, dtype=np.int64))
    np.savez(bad / "neglabels.npz", images=x, labels=-np.ones(40, dtype=np.int64))
    np.savez(bad / "floatlabels.npz", images=x, labels=y.astype(np.float32))
    np.savez(bad / "empty_images.npz", images=np.zeros((0, 16, 16, 3), np.uint8), labels=np.zeros(0, np.int64))
    np.savez(bad / "fivedim.npz", images=x[None], labels=y)
    np.savez(bad / "bigclassnames.npz", images=x, labels=y, classes=np.array(["a"]))
    _npz_huge_header(bad / "hugeshape.npz")
    for n in (
        "truncated",
        "object",
        "nanfloat",
        "oneclass",
        "neglabels",
        "floatlabels",
        "empty_images",
        "fivedim",
        "bigclassnames",
        "hugeshape",
    ):
        f[f"{n}.npz"] = str(bad / f"{n}.npz")
    from PIL import Image

    for root, extra in (
        ("imgs", None),
        ("bomb", ("c0", "huge.png", _png(40_000, 40_000))),
        ("garbage_png", ("c0", "x.png", b"not a png")),
        ("trunc_png", ("c1", "t.png", None)),
    ):
        for c in ("c0", "c1"):
            d = bad / root / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(d / f"{i}.png")
        if extra is not None:
            c, name, content = extra
            if content is None:
                content = (bad / root / c / "0.png").read_bytes()[:40]
            (bad / root / c / name).write_bytes(content)
        f[root] = str(bad / root)
    (bad / "oneclass_dir" / "only").mkdir(parents=True, exist_ok=True)
    Image.fromarray(x[0]).save(bad / "oneclass_dir" / "only" / "0.png")
    f["oneclass_dir"] = str(bad / "oneclass_dir")
    (bad / "emptydir").mkdir(exist_ok=True)
    f["emptydir"] = str(bad / "emptydir")
    # latency CSVs
    put("results.csv", "key,latency_ms\n" + "".join(f"{k},{0.1 + i / 10}\n" for i, k in enumerate(KEYS)))
    put("results_nan.csv", f"key,latency_ms\n{KEYS[0]},nan\n")
    put("results_neg_n.csv", f"key,latency_ms,std_ms,n\n{KEYS[0]},0.1,0.01,-4\n")
    put("results_bigint.csv", f"key,latency_ms\n{KEYS[0]},{'9' * 5000}\n")
    put("results_unknown.csv", "key,latency_ms\nzz_r1@1x1x1,0.1\n")
    put("results_badshape.csv", f"key,latency_ms\ncn_r1_k3_s2_c8@{'9' * 5000}x32x3,0.1\n")
    put("results_dup.csv", f"key,latency_ms\n{KEYS[0]},0.1\n{KEYS[0]},0.2\n")
    put("results_quote.csv", 'key,latency_ms\n"unterminated,0.1\n')
    put("results_inf_std.csv", f"key,latency_ms,std_ms\n{KEYS[0]},0.1,inf\n")
    models = ["mnv4-conv-small", "mnv4-conv-medium", "mnv4-conv-large", "mnv4-hybrid-medium", "mnv4-hybrid-large"]
    put("models.csv", "model_or_spec,latency_ms\n" + "".join(f"{m},{1 + i}\n" for i, m in enumerate(models)))
    put(
        "models_long.csv",
        "model_or_spec,latency_ms\n"
        + f"{f['conv-small']},1.0\n"
        + f"{f['hybrid-large']},5.0\n"
        + "".join(f"{m},{2 + i}\n" for i, m in enumerate(models[1:4])),
    )
    put("models_nan.csv", "model_or_spec,latency_ms\nmnv4-conv-small,nan\n")
    put("models_fifo.csv", f"model_or_spec,latency_ms\n{f['fifo.json']},1.0\nmnv4-conv-medium,2\n")
    put("models_one.csv", "model_or_spec,latency_ms\nmnv4-conv-small,1.0\n")
    put("models_nl.csv", 'model_or_spec,latency_ms\n"mnv4-conv-small\nx",1.0\n')
    # latency tables and catalogs with nonsense
    shipped = w.code / "latency_tables"
    f["table"] = (shipped / "pixel6-cpu.csv").read_text()
    f["catalog"] = (shipped / "devices.toml").read_text()
    # checkpoints and manifests
    ck = w.root / "ck.pt"
    w.cli(
        "supernet",
        "train",
        "--space",
        f["space"],
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--resolution",
        "32",
        "--out",
        str(ck),
        "--json",
    )
    f["ck"] = str(ck)
    fs = w.root / "fs" / "few.json"
    w.cli(
        "supernet",
        "train",
        "--space",
        f["space"],
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--resolution",
        "32",
        "--out",
        str(fs),
        "--split",
        "stage1.channels",
        "--json",
    )
    f["manifest"] = str(fs)
    _checkpoints(w, f, ck, torch)
    _manifests(w, f, fs)
    _training_fixtures(w, f)
    return f


#: The architecture the training cases train (tiny: a step takes milliseconds).
TRAIN_ARCH = "res32|cn_r1_k3_s2_c8|uir_r1_a3_k3_s2_e2_c16|uir_r1_a0_k3_s2_e2_c24|head_c32_cls10"


def _has_command(w: Work, name: str) -> bool:
    """Whether the code root's CLI has ``name`` (the campaign also runs against older checkouts)."""
    p = subprocess.run(
        [sys.executable, "-c", _boot(w.mem), "--help"],
        cwd=w.run,
        env=w.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return f" {name} " in p.stdout or f"│ {name}" in p.stdout


def _training_fixtures(w: Work, f: dict[str, str]) -> None:
    """A trained run, a distillation store labelled by it, and broken copies of each (train/eval/distill-data)."""
    if not (_has_command(w, "train") and _has_command(w, "distill-data")):
        return
    run, store = w.root / "trained", w.root / "store"
    w.cli(
        "train",
        TRAIN_ARCH,
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--out",
        str(run),
        "--json",
    )
    w.cli("distill-data", "--teacher", str(run), "--data", "builtin:4", "--aug", "none", "--out", str(store), "--json")
    f["trained"], f["store"] = str(run), str(store)
    d = w.root / "broken"
    for name in ("store_truncated", "store_noshards", "store_badmanifest", "run_empty"):
        (d / name).mkdir(parents=True, exist_ok=True)
    for src in store.iterdir():
        (d / "store_truncated" / src.name).write_bytes(src.read_bytes())
    shard = next((d / "store_truncated").glob("shard-*"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    manifest = json.loads((store / "manifest.json").read_text())
    (d / "store_noshards" / "manifest.json").write_text(json.dumps(manifest))
    (d / "store_badmanifest" / "manifest.json").write_text(
        '{"format": "mnv4-nas-distill-store", "version": 1, "shards": 5}'
    )
    (d / "garbage.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage" + os.urandom(64))
    (d / "garbage_ckpt.pt").write_bytes(os.urandom(256))
    (d / "garbage.onnx").write_bytes(os.urandom(256))
    for key in ("store_truncated", "store_noshards", "store_badmanifest", "run_empty"):
        f[key] = str(d / key)
    for key in ("garbage.safetensors", "garbage_ckpt.pt", "garbage.onnx"):
        f[key] = str(d / key)


def _npz_huge_header(path: Path) -> None:
    """An .npz whose images array declares 10^12 bytes (its data is a few bytes)."""
    import zipfile

    import numpy as np

    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000, 1), }"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 16
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", npy)
        buf = __import__("io").BytesIO()
        np.save(buf, np.arange(4))
        z.writestr("labels.npy", buf.getvalue())


def _checkpoints(w: Work, f: dict[str, str], ck: Path, torch: Any) -> None:
    obj = torch.load(ck, map_location="cpu", weights_only=True)
    meta = json.loads(obj["meta"])
    d = w.root / "cks"
    d.mkdir(exist_ok=True)

    def save(name: str, o: Any) -> None:
        torch.save(o, d / f"{name}.pt")
        f[f"ck.{name}"] = str(d / f"{name}.pt")

    def with_meta(name: str, edit: Any) -> None:
        m = json.loads(json.dumps(meta))
        edit(m)
        save(name, {**obj, "meta": json.dumps(m)})

    save("meta_not_json", {**obj, "meta": "not json"})
    save("meta_list", {**obj, "meta": "[]"})
    save("meta_int", {**obj, "meta": 5})
    with_meta("no_space", lambda m: m.pop("space"))
    with_meta("space_empty", lambda m: m["space"].update(definition={}))
    with_meta("space_stage_bad", lambda m: m["space"]["definition"].update(stages=[5]))
    with_meta("space_phase_bad", lambda m: m["space"].update(phase="sideways"))
    with_meta("res_abc", lambda m: m.update(resolution="abc"))
    with_meta("res_neg", lambda m: m.update(resolution=-5))
    with_meta("classes_zero", lambda m: m.update(num_classes=0))
    with_meta("no_config", lambda m: m.pop("config"))
    with_meta("seed_abc", lambda m: m["config"].update(seed="abc"))
    with_meta("no_data", lambda m: m.pop("data"))
    with_meta("valfrac_abc", lambda m: m["data"].update(val_fraction="abc"))
    with_meta("data_fifo", lambda m: m["data"].update(spec=f["fifo.npz"]))
    with_meta("data_int", lambda m: m["data"].update(spec=5))
    with_meta("classes_int", lambda m: m.update(classes=5))
    with_meta("history_str", lambda m: m.update(history="x"))
    with_meta("epochs_str", lambda m: m.update(epochs_done="x"))
    save("no_model", {**obj, "model": {}})
    save("wrong_format", {**obj, "format": "other"})
    save("version_99", {**obj, "version": 99})
    save("a_list", [1, 2, 3])
    save("a_tensor", torch.zeros(3))
    raw = ck.read_bytes()
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    f["ck.truncated"] = str(d / "truncated.pt")
    import pickle

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, ("touch " + str(w.root / "PWNED"),))

    (d / "evil.pt").write_bytes(pickle.dumps(Evil()))
    f["ck.evil"] = str(d / "evil.pt")


def _manifests(w: Work, f: dict[str, str], fs: Path) -> None:
    m = json.loads(fs.read_text())
    for name, edit in (
        ("format", lambda m: m.update(format="x")),
        ("version", lambda m: m.update(version=9)),
        ("shots_empty", lambda m: m.update(shots=[])),
        ("shot_path", lambda m: m["shots"][0].update(checkpoint="../../etc/passwd")),
        ("shot_missing", lambda m: m["shots"][0].update(checkpoint="nope.pt")),
        ("space_empty", lambda m: m.update(space={})),
        ("space_def_bad", lambda m: m["space"].update(definition={"name": 5})),
        ("split_bogus", lambda m: m.update(split="stage9.width")),
        ("split_int", lambda m: m.update(split=5)),
        ("label_wrong", lambda m: m["shots"][0].update(label="stage1.channels=999")),
        ("init_int", lambda m: m.update(init_from=5)),
        ("top_list", None),
    ):
        p = fs.parent / f"m_{name}.json"
        if edit is None:
            p.write_text("[1, 2]")
        else:
            mm = json.loads(json.dumps(m))
            edit(mm)
            p.write_text(json.dumps(mm))
        f[f"manifest.{name}"] = str(p)
    p = fs.parent / "m_nan.json"
    p.write_text(fs.read_text().replace('"version": 1', '"version": NaN'))
    f["manifest.nan"] = str(p)


# ----------------------------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------------------------


def build_cases(w: Work, f: dict[str, str]) -> list[Case]:
    """Every case (ids are unique)."""
    cases: list[Case] = []

    def add(
        id: str,
        klass: str,
        surface: str,
        argv: list[str],
        expect: str = "error",
        needle: str | None = None,
        timeout: float | None = None,
        config: str | None = None,
    ) -> None:
        cases.append(Case(id, klass, surface, argv, expect, needle, timeout, config))

    o = lambda name: str(w.out / name)  # noqa: E731 - a per-case output path
    space = f["space"]
    search = [
        "search",
        "--target",
        "pixel6-cpu",
        "--budget",
        "5ms",
        "--space",
        space,
        "--estimator",
        "params",
        "--fallback",
        "roofline",
        "--json",
    ]
    train = [
        "supernet",
        "train",
        "--space",
        space,
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--resolution",
        "32",
        "--json",
    ]
    _file_cases(add, w, f, o, search, train)
    _arch_cases(add, w, f, o)
    _output_cases(add, w, f, o, search, train)
    _option_cases(add, w, f, o, search, train)
    _config_cases(add, w, f, o, search, train)
    _table_cases(add, w, f, o, search)
    _checkpoint_cases(add, w, f, o, train)
    _data_cases(add, w, f, o, train)
    _space_cases(add, w, f, o, search, train)
    if "trained" in f:
        _training_cases(add, w, f, o)
    ids = Counter(c.id for c in cases)
    dup = [i for i, n in ids.items() if n > 1]
    assert not dup, dup
    return cases


BAD_KINDS = ("fifo", "devzero", "devnull", "dir", "missing", "binary", "empty", "nonutf8")


def _bad(f: dict[str, str], kind: str, sfx: str) -> str:
    if kind == "devzero":
        return "/dev/zero"
    if kind == "devnull":
        return "/dev/null"
    return f[f"{kind}.{sfx}"]


def _file_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str], train: list[str]) -> None:
    """Every file surface x every kind of bad file."""
    spec_surfaces = {
        "show": lambda p: ["show", p],
        "export": lambda p: ["export", p, "--format", "json"],
        "predict--spec": lambda p: ["latency", "predict", "--spec", p, "--target", "pixel6-cpu"],
        "eval-arch": lambda p: ["supernet", "eval", f["ck"], p],
        "sample--coarse": lambda p: ["space", "sample", f["space"], "--stage", "fine", "--coarse", p],
    }
    space_surfaces = {
        "space-show": lambda p, i: ["space", "show", p],
        "space-sample": lambda p, i: ["space", "sample", p, "--n", "1"],
        "search--space": lambda p, i: [*_replace(search, "--space", p), "--trials", "2", "--one-stage", "--out", o(i)],
        "train--space": lambda p, i: [*_replace(train, "--space", p), "--out", o(i + ".pt")],
        "build--space": lambda p, i: ["latency", "build", "--target", "s23-gpu", "--space", p],
    }
    for kind in BAD_KINDS:
        for name, argv in spec_surfaces.items():
            add(f"{name}:{kind}", "bad-file", name, argv(_bad(f, kind, "json")), needle=None)
        for name, argv in space_surfaces.items():
            i = f"{name}-{kind}".replace("--", "-")
            add(f"{name}:{kind}", "bad-file", name, argv(_bad(f, kind, "toml"), i))
        ok = "ok" if kind == "empty" else "error"  # an empty config file is a valid one (all defaults)
        add(f"config:{kind}", "bad-file", "--config", ["space", "list"], expect=ok, config=_bad(f, kind, "toml"))
        add(
            f"import:{kind}",
            "bad-file",
            "latency import",
            ["latency", "import", _bad(f, kind, "csv"), "--target", "s23-gpu"],
            config=w.tables_config(f"import-{kind}", {}),
        )
        add(
            f"from-models:{kind}",
            "bad-file",
            "import --from-models",
            ["latency", "import", "--from-models", _bad(f, kind, "csv"), "--target", "s23-gpu"],
            config=w.tables_config(f"fm-{kind}", {}),
        )
        for sfx in ("pt", "json"):
            p = _bad(f, kind, sfx)
            if sfx == "json" and kind in ("devzero", "devnull"):
                continue
            add(f"info:{kind}.{sfx}", "bad-file", "supernet info", ["supernet", "info", p])
            add(f"eval:{kind}.{sfx}", "bad-file", "supernet eval", ["supernet", "eval", p, "--sample", "1"])
            add(
                f"extract:{kind}.{sfx}",
                "bad-file",
                "supernet extract",
                ["supernet", "extract", p, MEMBER, "-o", o(f"x-{kind}-{sfx}.pt")],
            )
            add(
                f"estimator:{kind}.{sfx}",
                "bad-file",
                "search --estimator supernet:",
                [
                    *_replace(search, "--estimator", f"supernet:{p}"),
                    "--trials",
                    "2",
                    "--one-stage",
                    "--out",
                    o(f"est-{kind}-{sfx}"),
                ],
            )
        add(
            f"init-from:{kind}",
            "bad-file",
            "train --init-from",
            [*train, "--init-from", _bad(f, kind, "pt"), "--out", o(f"init-{kind}.pt")],
        )
        add(
            f"data:{kind}",
            "bad-file",
            "train --data",
            [*_replace(train, "--data", _bad(f, kind, "npz")), "--out", o(f"data-{kind}.pt")],
        )
    for kind, path in (
        ("deep", f["deep.json"]),
        ("deepobj", f["deepobj.json"]),
        ("bigint", f["bigint.json"]),
        ("deep-toml", f["deep.toml"]),
        ("bigint-toml", f["bigint.toml"]),
        ("bigint-txt", f["bigint.txt"]),
        ("nan", f["nan.json"]),
        ("huge", f["huge.txt"]),
        ("layers-1.28M", f["layers.txt"]),
        ("blocks-5k", f["blocks5k.json"]),
    ):
        add(f"show:{kind}", "size-depth", "show", ["show", path])
        add(
            f"predict--spec:{kind}",
            "size-depth",
            "predict --spec",
            ["latency", "predict", "--spec", path, "--target", "pixel6-cpu"],
        )
    for kind in ("deep", "bigint", "nan"):
        add(f"manifest-info:spec-{kind}", "size-depth", "supernet info", ["supernet", "info", f[f"{kind}.json"]])
    for kind, path in (("deep", f["deep.toml"]), ("bigint", f["bigint.toml"]), ("huge", f["huge.txt"])):
        add(f"config:{kind}", "size-depth", "--config", ["space", "list"], config=path)
        add(f"space-show:{kind}", "size-depth", "space show", ["space", "show", path])
    add("space-show:bigdepth", "size-depth", "space show", ["space", "show", f["space_bigdepth.toml"]])
    add("space-show:deepkey", "size-depth", "space show", ["space", "show", f["space_deepkey.toml"]])
    # valid files (each surface's baseline)
    for fmt in ("json", "toml"):
        add(f"show:valid-{fmt}", "valid", "show", ["show", f[f"spec.{fmt}"]], expect="ok")
    add("show:timm-lines", "bad-file", "show", ["show", f["spec.timm"]])  # timm arch-def lines are no spec file
    add("show:arch-file", "valid", "show", ["show", str(w.bad / "arch.txt")], expect="ok")
    add(
        "predict--spec:valid",
        "valid",
        "predict --spec",
        ["latency", "predict", "--spec", f["spec.json"], "--target", "pixel6-cpu"],
        expect="ok",
    )
    add("space-show:valid", "valid", "space show", ["space", "show", f["space"]], expect="ok")
    add("space-show:crlf", "valid", "space show", ["space", "show", f["space_crlf.toml"]], expect="ok")
    add("config:empty-ok", "valid", "--config", ["space", "list"], expect="ok", config=f["empty.toml"])


def _swap(argv: list[str], old: str, new: str) -> list[str]:
    """``argv`` with the element ``old`` replaced by ``new``."""
    return [new if a == old else a for a in argv]


def _replace(argv: list[str], opt: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(opt) + 1] = value
    return out


def _arch_cases(add: Any, w: Work, f: dict[str, str], o: Any) -> None:
    """Arch strings: long ones (> 255 characters) everywhere one is taken, and malformed ones."""
    small, large = f["conv-small"], f["hybrid-large"]
    padded = " | ".join(MEMBER.split("|")).replace("|", "   |   ")  # a member, > 255 characters
    assert len(padded) > 255 and len(small) > 255
    add("long:show", "arch-length", "show", ["show", small], expect="ok")
    add("long:show-hybrid-large", "arch-length", "show", ["show", large], expect="ok")
    add("long:show-json", "arch-length", "show", ["show", small, "--json"], expect="ok")
    add("long:export-json", "arch-length", "export", ["export", small, "-f", "json"], expect="ok")
    add("long:export-timm", "arch-length", "export", ["export", large, "-f", "timm"], expect="ok")
    add(
        "long:export-toml-file",
        "arch-length",
        "export",
        ["export", small, "-f", "toml", "-o", o("long.toml")],
        expect="ok",
    )
    add(
        "long:predict",
        "arch-length",
        "predict --spec",
        ["latency", "predict", "--spec", small, "--target", "pixel6-cpu"],
        expect="ok",
    )
    add(
        "long:predict-large",
        "arch-length",
        "predict --spec",
        ["latency", "predict", "--spec", large, "--target", "s23-gpu"],
        expect="ok",
    )
    add("long:eval", "arch-length", "supernet eval", ["supernet", "eval", f["ck"], padded], expect="ok")
    add("long:eval-manifest", "arch-length", "supernet eval", ["supernet", "eval", f["manifest"], padded], expect="ok")
    add(
        "long:extract",
        "arch-length",
        "supernet extract",
        ["supernet", "extract", f["ck"], padded, "-o", o("long-x.pt")],
        expect="ok",
    )
    add(
        "long:sample--coarse",
        "arch-length",
        "space sample --coarse",
        ["space", "sample", f["space"], "--stage", "fine", "--coarse", padded, "--n", "1"],
        expect="ok",
    )
    add(
        "long:from-models",
        "arch-length",
        "import --from-models",
        ["latency", "import", "--from-models", f["models_long.csv"], "--target", "s23-gpu"],
        expect="ok",
        config=w.tables_config("fm-long", {}),
    )
    add(
        "long:profile--model",
        "arch-length",
        "profile --model",
        ["latency", "profile", "--model", small, "--target", "pixel6-cpu"],
        needle="host-cpu",
    )
    add(
        "long:bundle--model",
        "arch-length",
        "bundle --model",
        ["latency", "bundle", "--target", "s23-gpu", "--model", small, "-o", f["existing_dir"]],
        needle="existing_dir",
    )
    nl = small.replace("|uir", "\n|uir", 1)
    add("newline:show", "arch-newline", "show", ["show", nl])
    add(
        "newline:predict",
        "arch-newline",
        "predict --spec",
        ["latency", "predict", "--spec", nl, "--target", "pixel6-cpu"],
    )
    add("newline:export", "arch-newline", "export", ["export", small.replace("|", "|\n", 1), "-f", "json"])
    add("tab:show", "arch-newline", "show", ["show", small.replace("|", "\t|", 1)])
    add("cr:show", "arch-newline", "show", ["show", small.replace("|", "\r|", 2)])
    add("spaces:show", "valid", "show", ["show", "  " + small.replace("|", " | ") + "  "], expect="ok")
    add(
        "repeat:show",
        "valid",
        "show",
        ["show", "res224|cn_r1_k3_s2_c32|uir_r4_a3_k3_s2_e4_c64|head_cls10"],
        expect="ok",
    )
    many = "res224|cn_r1_k3_s2_c32|" + "|".join(["uir_r64_a3_k3_s1_e4_c32"] * 2000) + "|head_cls10"
    add("size:show-128k-layers", "size-depth", "show", ["show", many], needle="blocks")
    add(
        "size:predict-128k-layers",
        "size-depth",
        "predict --spec",
        ["latency", "predict", "--spec", many, "--target", "pixel6-cpu"],
    )
    add(
        "size:show-3000-blocks",
        "size-depth",
        "show",
        ["show", "res224|cn_r1_k3_s2_c32|" + "|".join(["uir_r1_a3_k3_s1_e4_c32"] * 3000) + "|head_cls10"],
    )
    for name, text in (
        ("empty", ""),
        ("blank", "   "),
        ("pipe", "|"),
        ("res-only", "res224|"),
        ("no-head", "res224|cn_r1_k3_s2_c32|uir_r1_a3_k3_s2_e4_c64"),
        ("double-pipe", "res224|cn_r1_k3_s2_c32||head_cls10"),
        ("neg", "res224|cn_r1_k3_s2_c-32|head_cls10"),
        ("res-digits", "res" + "2" * 5000 + "|cn_r1_k3_s2_c32|head_cls10"),
        ("cls-digits", "res224|cn_r1_k3_s2_c32|head_cls" + "1" * 5000),
        ("chan-digits", "res224|cn_r1_k3_s2_c" + "3" * 5000 + "|head_cls10"),
        ("head-c-digits", "res224|cn_r1_k3_s2_c32|head_c" + "9" * 5000 + "_cls10"),
        ("res0", "res0|cn_r1_k3_s2_c32|head_cls10"),
        ("cls0", "res224|cn_r1_k3_s2_c32|head_cls0"),
        ("float-res", "res224.5|cn_r1_k3_s2_c32|head_cls10"),
        ("exp-nan", "res224|cn_r1_k3_s2_c32|er_r1_k3_s1_enan_c32|head_cls10"),
        ("exp-huge", "res224|cn_r1_k3_s2_c32|er_r1_k3_s1_e1" + "0" * 400 + "_c32|head_cls10"),
        ("unicode-digit", "res２２４|cn_r1_k3_s2_c32|head_cls10"),
        ("r0", "res224|cn_r0_k3_s2_c32|head_cls10"),
        ("r1000", "res224|cn_r1_k3_s2_c32|uir_r1000_a3_k3_s1_e4_c32|head_cls10"),
        ("kernel-99", "res224|cn_r1_k99_s2_c32|head_cls10"),
        ("stride-9", "res224|cn_r1_k3_s9_c32|head_cls10"),
        ("res-huge", "res999999|cn_r1_k3_s2_c32|head_cls10"),
        ("tiny-res", "res1|cn_r1_k3_s2_c32|uir_r1_a3_k3_s2_e4_c64|uir_r1_a3_k3_s2_e4_c64|head_cls10"),
        ("nul-like", "res224|cn_r1_k3_s2_c32\x7f|head_cls10"),
        ("emoji", "res224|cn_r1_k3_s2_c32|🙂|head_cls10"),
    ):
        expect = "any" if name in ("unicode-digit",) else "error"
        add(f"arch:{name}", "arch-malformed", "show", ["show", text], expect=expect)
    add("arch:zoo-typo", "arch-malformed", "show", ["show", "mnv4-conv-smal"])
    add("arch:eval-nonmember", "arch-malformed", "supernet eval", ["supernet", "eval", f["ck"], small])
    add(
        "arch:extract-nonmember",
        "arch-malformed",
        "supernet extract",
        ["supernet", "extract", f["ck"], small, "-o", o("nm.pt")],
    )


def _output_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str], train: list[str]) -> None:
    """Output paths: an existing directory, under a regular file, in an unwritable or full place."""
    under = f["regular"] + "/x"
    long_name = str(w.out / ("n" * 300))
    places = {
        "existing-dir": f["existing_dir"],
        "under-file": under,
        "sys": "/sys/mnv4nas-x",
        "proc": "/proc/mnv4nas-x",
        "devfull": "/dev/full",
        "name-too-long": long_name,
        "empty": "",
    }
    if w.full is not None:
        places["enospc"] = str(w.full / "deep" / "x")
    for name, p in places.items():
        add(
            f"export-o:{name}",
            "output-path",
            "export -o",
            [
                "export",
                "mnv4-conv-large",
                "-f",
                "json",
                "-o",
                p + ("" if name in ("existing-dir", "devfull", "empty") else ".json"),
            ],
        )
        add(
            f"export-onnx-o:{name}",
            "output-path",
            "export -f onnx -o",
            ["export", TINY, "-f", "onnx", "-o", p + ("" if name in ("existing-dir", "devfull", "empty") else ".onnx")],
        )
        add(f"search-out:{name}", "output-path", "search --out", [*search, "--trials", "2", "--one-stage", "--out", p])
        add(
            f"train-out:{name}",
            "output-path",
            "supernet train --out",
            [*train, "--out", p + ("" if name in ("existing-dir", "devfull", "empty") else ".pt")],
        )
        add(
            f"extract-o:{name}",
            "output-path",
            "supernet extract -o",
            [
                "supernet",
                "extract",
                f["ck"],
                MEMBER,
                "-o",
                p + ("" if name in ("existing-dir", "devfull", "empty") else ".pt"),
            ],
        )
        add(
            f"bundle-o:{name}",
            "output-path",
            "latency bundle -o",
            ["latency", "bundle", "--target", "s23-gpu", "--no-zoo", "--model", TINY, "-o", p],
        )
        ok = "ok" if name == "existing-dir" else "error"
        if name != "empty":  # tables_dir = "" is the shipped folder: never written by the campaign
            add(
                f"tables-dir:{name}",
                "output-path",
                "latency build (tables_dir)",
                ["latency", "build", "--target", "s23-gpu"],
                expect=ok,
                config=w.config(f"tdir-{name}", {"latency": {"tables_dir": p}}),
            )
        add(
            f"output-dir:{name}",
            "output-path",
            "latency validate (output_dir)",
            ["latency", "validate", "--published", "--target", "pixel6-cpu"],
            expect=ok,
            config=w.config(f"odir-{name}", {"project": {"output_dir": p}}),
        )
    add(
        "export-o:new-nested",
        "valid",
        "export -o",
        ["export", "mnv4-conv-small", "-f", "json", "-o", o("a/b/c.json")],
        expect="ok",
    )
    add(
        "export-onnx:valid",
        "valid",
        "export -f onnx",
        ["export", TINY, "-f", "onnx", "-o", o("tiny.onnx")],
        expect="ok",
    )
    add(
        "search-out:existing-file",
        "output-path",
        "search --out",
        [*search, "--trials", "2", "--one-stage", "--out", f["regular"]],
    )
    add(
        "bundle:valid",
        "valid",
        "latency bundle",
        ["latency", "bundle", "--target", "s23-gpu", "--no-zoo", "--model", TINY, "-o", o("bundle")],
        expect="ok",
    )


def _option_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str], train: list[str]) -> None:
    """Numeric and named options that reach a library."""
    one = ["--trials", "2", "--one-stage"]
    for name, extra in (
        ("trials0-one-stage", ["--trials", "0", "--one-stage"]),
        ("trials-neg", ["--trials", "-3", "--one-stage"]),
        ("trials0-two-stage", ["--trials", "0"]),
        ("coarse-trials0", ["--coarse-trials", "0", "--fine-trials", "2"]),
        ("fine-trials0", ["--coarse-trials", "2", "--fine-trials", "0"]),
        ("coarse-trials-neg", ["--coarse-trials", "-1", "--fine-trials", "2"]),
        ("seed-neg", [*one, "--seed", "-1"]),
        ("seed-2^32", [*one, "--seed", str(2**32)]),
        ("seed-huge", [*one, "--seed", "9" * 30]),
        ("coarse-top0", ["--coarse-trials", "2", "--fine-trials", "2", "--coarse-top", "0"]),
        ("workers0", [*one, "--workers", "0"]),
        ("beta-nan", [*one, "--beta", "nan"]),
        ("beta-inf", [*one, "--beta", "inf"]),
        ("beta-neginf", [*one, "--beta", "-inf"]),
        ("beta-pos", [*one, "--beta", "0.5"]),
        ("beta-zero", [*one, "--beta", "0"]),
        ("engine-bogus", [*one, "--engine", "bogus"]),
        ("engine-tunas-params", [*one, "--engine", "tunas"]),
        ("fallback-bogus", [*one, "--fallback", "bogus"]),
        ("storage-sqlite-memory", [*one, "--storage", "sqlite://"]),
        ("storage-text-file", [*one, "--storage", f["regular"]]),
        ("storage-dir", [*one, "--storage", f["existing_dir"]]),
        ("storage-binary", [*one, "--storage", f["binary.json"]]),
        ("storage-fifo", [*one, "--storage", f["fifo.txt"]]),
        ("storage-bogus-scheme", [*one, "--storage", "bogus://x"]),
        ("storage-pg-refused", [*one, "--storage", "postgresql://127.0.0.1:1/x"]),
        ("storage-devnull", [*one, "--storage", "/dev/null"]),
        ("storage-under-file", [*one, "--storage", f["regular"] + "/j.journal"]),
        ("ray-client", [*one, "--ray-address", "ray://127.0.0.1:1"]),
        ("ray-auto", [*one, "--ray-address", "auto"]),
        ("ray-bogus", [*one, "--ray-address", "bogus:://x"]),
        ("estimator-empty", [*one, "--estimator", ""]),
        ("estimator-bogus", [*one, "--estimator", "bogus"]),
        ("estimator-zen-res0", [*one, "--estimator", "zen@0"]),
        ("estimator-zen-resnan", [*one, "--estimator", "zen@nan"]),
        ("estimator-zen-res-neg", [*one, "--estimator", "zen@-5"]),
        ("estimator-zen-res-huge", [*one, "--estimator", "zen@100000"]),
        ("estimator-params-arg", [*one, "--estimator", "params@3"]),
        ("estimator-supernet-empty", [*one, "--estimator", "supernet:"]),
        ("coarse-estimator-empty", ["--coarse-trials", "2", "--fine-trials", "2", "--coarse-estimator", ""]),
        ("study-empty", [*one, "--study", ""]),
    ):
        add(f"search:{name}", "option", "search", [*search, *extra, "--out", o(f"s-{name}")])
    add("search:valid", "valid", "search", [*search, *one, "--out", o("s-valid")], expect="ok")
    add(
        "search:valid-two-stage",
        "valid",
        "search",
        [*search, "--coarse-trials", "2", "--fine-trials", "2", "--out", o("s-valid2")],
        expect="ok",
    )
    for name, b in (
        ("empty", ""),
        ("zero", "0ms"),
        ("neg", "-1ms"),
        ("nan", "nanms"),
        ("inf", "infms"),
        ("1e999", "1e999ms"),
        ("no-unit", "4"),
        ("parsecs", "4 parsecs"),
        ("tiny", "1e-300ms"),
        ("digits", "9" * 5000 + "ms"),
    ):
        add(
            f"budget:{name}",
            "option",
            "search --budget",
            [*_replace(search, "--budget", b), *one, "--out", o(f"b-{name}")],
        )
    add(
        "budget:spaced-ok",
        "valid",
        "search --budget",
        [*_replace(search, "--budget", "5 ms"), *one, "--out", o("b-ok")],
        expect="ok",
    )
    for name, t in (("empty", ""), ("bogus", "pixel99"), ("newline", "pixel6-cpu\n")):
        add(
            f"target:search-{name}",
            "option",
            "search --target",
            [*_replace(search, "--target", t), *one, "--out", o(f"t-{name}")],
        )
        add(
            f"target:predict-{name}",
            "option",
            "predict --target",
            ["latency", "predict", "--model", "mnv4-conv-small", "--target", t],
        )
        add(f"target:build-{name}", "option", "build --target", ["latency", "build", "--target", t])
    add(
        "target:train-tunas-empty",
        "option",
        "train --target",
        [*train, "--sampler", "tunas", "--target", "", "--out", o("tt.pt")],
    )
    # export
    for name, extra in (
        ("opset1000", ["--opset", "1000"]),
        ("opset16", ["--opset", "16"]),
        ("opset-neg", ["--opset", "-1"]),
        ("opset-huge", ["--opset", "9" * 25]),
        ("opset24", ["--opset", "24"]),
        ("format-bogus", ["--format", "bogus"]),
        ("onnx-stdout", ["-o", "-"]),
    ):
        fmt = [] if name == "format-bogus" else ["-f", "onnx"]
        add(
            f"export:{name}",
            "option",
            "export",
            ["export", TINY, *fmt, *extra] + ([] if "-o" in extra else ["-o", o(f"e-{name}.onnx")]),
        )
    add(
        "export:opset18-ok",
        "valid",
        "export",
        ["export", TINY, "-f", "onnx", "--opset", "18", "-o", o("e18.onnx")],
        expect="ok",
    )
    # space sample
    for name, extra in (
        ("n0", ["--n", "0"]),
        ("seed-neg", ["--seed", "-1"]),
        ("seed-huge", ["--seed", "9" * 30]),
        ("stage-bogus", ["--stage", "bogus"]),
        ("coarse-with-joint", ["--coarse", "mnv4-conv-small"]),
    ):
        add(
            f"sample:{name}",
            "option",
            "space sample",
            ["space", "sample", f["space"], *extra],
            expect="any" if name == "coarse-with-joint" else "error",
        )
    add(
        "sample:valid", "valid", "space sample", ["space", "sample", f["space"], "--n", "2", "--seed", "3"], expect="ok"
    )
    # latency
    for name, extra in (
        ("calib-neg", ["--calib", "-1"]),
        ("threads0", ["--threads", "0"]),
        ("runs0", ["--runs", "0"]),
        ("sessions0", ["--sessions", "0"]),
        ("runs-neg", ["--runs", "-5"]),
        ("target-other", ["--target", "pixel6-cpu"]),
        ("seed-neg", ["--seed", "-1", "--space", f["space"]]),
        ("nothing", ["--no-zoo"]),
    ):
        add(
            f"profile:{name}",
            "option",
            "latency profile",
            ["latency", "profile", *extra],
            config=w.tables_config(f"prof-{name}", {}),
        )
    for name, extra in (
        ("archs0", ["--archs", "0"]),
        ("archs-neg", ["--archs", "-2"]),
        ("threads0", ["--threads", "0", "--archs", "1"]),
        ("runs0", ["--runs", "0", "--archs", "1"]),
        ("seed-neg", ["--seed", "-1", "--archs", "1"]),
        ("published-unknown", ["--published", "--target", "pixel99"]),
    ):
        add(f"validate:{name}", "option", "latency validate", ["latency", "validate", *extra])
    add(
        "validate:published-ok",
        "valid",
        "latency validate",
        ["latency", "validate", "--published", "--target", "pixel6-cpu"],
        expect="ok",
    )
    for name, v in (("neg", "-1"), ("nan", "nan"), ("inf", "inf"), ("zero", "0")):
        add(
            f"cache-mib:{name}",
            "option",
            "latency import --cache-mib",
            ["latency", "import", f["results.csv"], "--target", "s23-gpu", "--cache-mib", v],
            expect="any" if name == "zero" else "error",
            config=w.tables_config(f"cm-{name}", {}),
        )
    add(
        "import:valid",
        "valid",
        "latency import",
        ["latency", "import", f["results.csv"], "--target", "s23-gpu"],
        expect="ok",
        config=w.tables_config("import-valid", {}),
    )
    for name in ("nan", "neg_n", "bigint", "unknown", "badshape", "dup", "quote", "inf_std"):
        add(
            f"import:{name}",
            "csv",
            "latency import",
            ["latency", "import", f[f"results_{name}.csv"], "--target", "s23-gpu"],
            config=w.tables_config(f"import-{name}", {}),
        )
    add(
        "from-models:valid",
        "valid",
        "import --from-models",
        ["latency", "import", "--from-models", f["models.csv"], "--target", "s23-gpu"],
        expect="ok",
        config=w.tables_config("fm-valid", {}),
    )
    for name in ("nan", "fifo", "one", "nl"):
        add(
            f"from-models-csv:{name}",
            "csv",
            "import --from-models",
            ["latency", "import", "--from-models", f[f"models_{name}.csv"], "--target", "s23-gpu"],
            config=w.tables_config(f"fm-{name}", {}),
            timeout=30,
        )
    add(
        "predict:both",
        "option",
        "latency predict",
        ["latency", "predict", "--model", "mnv4-conv-small", "--spec", f["spec.json"]],
    )
    add(
        "predict:fallback-bogus",
        "option",
        "latency predict",
        ["latency", "predict", "--model", "mnv4-conv-small", "--target", "pixel6-cpu", "--fallback", "x"],
    )
    add(
        "predict:valid",
        "valid",
        "latency predict",
        ["latency", "predict", "--model", "mnv4-conv-small", "--target", "pixel6-cpu"],
        expect="ok",
    )
    add("fit:dry-run", "valid", "latency fit", ["latency", "fit", "--target", "pixel6-cpu", "--dry-run"], expect="ok")
    add("fit:unknown", "option", "latency fit", ["latency", "fit", "--target", "pixel99", "--dry-run"])
    add("build:nothing", "option", "latency build", ["latency", "build"])
    # supernet train options
    for name, extra in (
        ("lr0", ["--lr", "0"]),
        ("lr-neg", ["--lr", "-1"]),
        ("lr-nan", ["--lr", "nan"]),
        ("lr-inf", ["--lr", "inf"]),
        ("lr-1e309", ["--lr", "1e309"]),
        ("lr-huge", ["--lr", "1e30"]),
        ("beta-nan", ["--beta", "nan"]),
        ("beta-inf", ["--beta", "inf"]),
        ("beta-neginf", ["--beta", "-inf"]),
        ("beta-pos", ["--beta", "0.5"]),
        ("data-empty", ["--data", ""]),
        ("data-blank", ["--data", " "]),
        ("data-builtin0", ["--data", "builtin:0"]),
        ("data-builtin-huge", ["--data", "builtin:" + "9" * 5000]),
        ("data-builtin-neg", ["--data", "builtin:-1"]),
        ("epochs0", ["--epochs", "0"]),
        ("batch1", ["--batch-size", "1"]),
        ("resolution0", ["--resolution", "0"]),
        ("resolution-huge", ["--resolution", "99999"]),
        ("seed-neg", ["--seed", "-1"]),
        ("seed-huge", ["--seed", "9" * 30]),
        ("seed-2^64", ["--seed", str(2**64)]),
        ("threads0", ["--threads", "0"]),
        ("threads-neg", ["--threads", "-2"]),
        ("device-cuda", ["--device", "cuda"]),
        ("device-cuda0", ["--device", "cuda:0"]),
        ("device-cuda-x", ["--device", "cuda:x"]),
        ("device-tpu9", ["--device", "tpu9"]),
        ("device-empty", ["--device", ""]),
        ("device-mps", ["--device", "mps"]),
        ("device-meta", ["--device", "meta"]),
        ("random-subnets-neg", ["--random-subnets", "-1"]),
        ("uniform-0-subnets", ["--sampler", "uniform", "--random-subnets", "0"]),
        ("budget-without-tunas", ["--budget", "5ms"]),
        ("tunas-budget-nan", ["--sampler", "tunas", "--budget", "nan"]),
        ("tunas-budget-zero", ["--sampler", "tunas", "--budget", "0"]),
        ("tunas-budget-inf", ["--sampler", "tunas", "--budget", "inf"]),
        ("tunas-budget-empty", ["--sampler", "tunas", "--budget", ""]),
        ("tunas-latency-no-target", ["--sampler", "tunas", "--cost", "latency"]),
        ("split-bogus", ["--split", "bogus"]),
        ("split-empty", ["--split", ""]),
        ("split-pt", ["--split", "stage1.channels"]),
        ("phase-bogus", ["--phase", "bogus"]),
        ("max-steps0", ["--max-steps", "0"]),
    ):
        add(f"train:{name}", "option", "supernet train", [*train, *extra, "--out", o(f"tr-{name}.pt")])
    add("train:valid", "valid", "supernet train", [*train, "--out", o("tr-valid.pt")], expect="ok")
    add(
        "train:device-cpu", "valid", "supernet train", [*train, "--device", "cpu", "--out", o("tr-cpu.pt")], expect="ok"
    )
    add("eval:sample-neg", "option", "supernet eval", ["supernet", "eval", f["ck"], "--sample", "-1"])
    add("eval:seed-neg", "option", "supernet eval", ["supernet", "eval", f["ck"], "--sample", "1", "--seed", "-1"])
    add("eval:threads0", "option", "supernet eval", ["supernet", "eval", f["ck"], "--sample", "1", "--threads", "0"])
    add("eval:nothing", "option", "supernet eval", ["supernet", "eval", f["ck"]])
    add(
        "eval:valid",
        "valid",
        "supernet eval",
        ["supernet", "eval", f["ck"], "--sample", "1", "--extremes"],
        expect="ok",
    )
    add(
        "extract:format-onnx",
        "valid",
        "supernet extract",
        ["supernet", "extract", f["ck"], MEMBER, "-f", "onnx", "-o", o("x.onnx")],
        expect="ok",
    )


def _config_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str], train: list[str]) -> None:
    """``nas.toml`` values, each with a command that uses them."""
    sample = ["space", "sample", f["space"], "--n", "1"]
    no_target = [a for a in search if a not in ("--target", "pixel6-cpu", "--budget", "5ms")]
    cfg_search = [*no_target, "--out"]
    validate = ["latency", "validate", "--target", "host-cpu", "--archs", "1", "--space", f["space"]]
    train_cfg = [
        "supernet",
        "train",
        "--space",
        f["space"],
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--resolution",
        "32",
        "--json",
        "--out",
    ]
    for name, sections, argv in (
        ("seed-neg", {"project": {"seed": -1}}, sample),
        (
            "seed-huge",
            {"project": {"seed": RawToml("9" * 18)}},
            [*search, "--trials", "2", "--one-stage", "--out", o("c-seed-huge")],
        ),
        ("seed-digits", {"project": {"seed": RawToml("9" * 5000)}}, sample),
        ("seed-float", {"project": {"seed": 1.5}}, sample),
        (
            "output-dir-empty",
            {"project": {"output_dir": ""}},
            ["latency", "validate", "--published", "--target", "pixel6-cpu"],
        ),
        ("trials0", {"search": {"trials": 0}}, [*search, "--one-stage", "--out", o("c-trials0")]),
        ("coarse-trials-neg", {"search": {"coarse_trials": -1}}, [*search, "--out", o("c-ct-neg")]),
        ("budget-empty", {"search": {"budget": "", "target": "pixel6-cpu"}}, [*cfg_search, o("c-budget-empty")]),
        ("budget-nan", {"search": {"budget": "nanms", "target": "pixel6-cpu"}}, [*cfg_search, o("c-budget-nan")]),
        ("target-empty", {"search": {"target": "", "budget": "5ms"}}, [*cfg_search, o("c-target-empty")]),
        ("target-empty-predict", {"search": {"target": ""}}, ["latency", "predict", "--model", "mnv4-conv-small"]),
        (
            "estimator-empty",
            {"search": {"estimator": ""}},
            [
                *[a for a in search if a not in ("--estimator", "params")],
                "--trials",
                "2",
                "--one-stage",
                "--out",
                o("c-est"),
            ],
        ),
        ("tunas-steps0", {"search": {"tunas_steps": 0}}, ["space", "list"]),
        ("threads0", {"latency": {"threads": 0}}, validate),
        ("runs0", {"latency": {"runs": 0}}, validate),
        ("sessions0", {"latency": {"sessions": 0}}, validate),
        ("warmup-neg", {"latency": {"warmup": -1}}, validate),
        ("flush-nan", {"latency": {"flush_mib": float("nan")}}, validate),
        ("guard-nan", {"latency": {"guard": float("nan")}}, validate),
        ("guard-neg", {"latency": {"guard": -1.0}}, validate),
        ("guard-inf", {"latency": {"guard": float("inf")}}, validate),
        ("tables-dir-file", {"latency": {"tables_dir": f["regular"]}}, ["latency", "targets"]),
        ("tables-dir-fifo", {"latency": {"tables_dir": f["fifo.csv"]}}, ["latency", "targets"]),
        ("lr0", {"supernet": {"lr": 0.0, "data": "builtin:4"}}, [*train_cfg, o("c-lr0.pt")]),
        ("lr-nan", {"supernet": {"lr": float("nan"), "data": "builtin:4"}}, [*train_cfg, o("c-lrnan.pt")]),
        ("lr-inf", {"supernet": {"lr": float("inf"), "data": "builtin:4"}}, [*train_cfg, o("c-lrinf.pt")]),
        (
            "epochs0",
            {"supernet": {"epochs": 0, "data": "builtin:4"}},
            [a for a in train_cfg if a not in ("--epochs", "1")] + [o("c-ep0.pt")],
        ),
        (
            "batch0",
            {"supernet": {"batch_size": 0, "data": "builtin:4"}},
            [a for a in train_cfg if a not in ("--batch-size", "8")] + [o("c-b0.pt")],
        ),
        (
            "resolution0",
            {"supernet": {"resolution": 0, "data": "builtin:4"}},
            [a for a in train_cfg if a not in ("--resolution", "32")] + [o("c-r0.pt")],
        ),
        ("data-empty", {"supernet": {"data": ""}}, [*train_cfg, o("c-data.pt")]),
        (
            "space-empty",
            {"supernet": {"space": "", "data": "builtin:4"}},
            ["supernet", "train", "--data", "builtin:4", "--max-steps", "1", "--out", o("c-sp.pt")],
        ),
        ("checkpoint-empty", {"supernet": {"checkpoint": "", "data": "builtin:4"}}, [*train_cfg[:-1]]),
        ("sampler-bogus", {"supernet": {"sampler": "bogus", "data": "builtin:4"}}, [*train_cfg, o("c-smp.pt")]),
        ("unknown-key", {"search": {"trails": 3}}, ["space", "list"]),
        ("unknown-section", {"serach": {"trials": 3}}, ["space", "list"]),
        ("wrong-type", {"search": {"trials": "3"}}, ["space", "list"]),
    ):
        add(f"nas.toml:{name}", "config", f"nas.toml {name}", argv, config=w.config(f"c-{name}", sections))
    add(
        "nas.toml:valid", "valid", "nas.toml", sample, expect="ok", config=w.config("c-valid", {"project": {"seed": 7}})
    )


def _table_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str]) -> None:
    """Latency tables and device catalogs with nonsense in them."""
    table = f["table"]
    predict = ["latency", "predict", "--model", "mnv4-conv-small", "--target", "pixel6-cpu"]
    tsearch = [
        *_replace(_replace(search, "--space", "mnv4-conv-small"), "--budget", "3ms"),
        "--trials",
        "3",
        "--one-stage",
    ]
    tsearch = [a for a in tsearch if a not in ("--fallback", "roofline")]
    for key, values in (
        ("overhead_ms", ("nan", "-1", "inf", "-inf", "1e309", "abc")),
        ("context_scale", ("nan", "-1", "0", "inf")),
        ("cache_ms_per_mib", ("nan", "-1", "inf")),
        ("cache_mib", ("nan", "-1")),
        ("call_ms", ("nan", "inf", "-1")),
        ("threads", ("abc",)),
        ("schema", ("9" * 5000,)),
    ):
        for v in values:
            text = re.sub(rf"^# {key}: .*$", f"# {key}: {v}", table, flags=re.M)
            if f"# {key}:" not in text:
                text = text.replace("# created:", f"# {key}: {v}\n# created:", 1)
            cfg = w.tables_config(f"t-{key}-{v[:8]}", {"pixel6-cpu.csv": text})
            add(f"table:{key}={v[:8]}", "table-meta", "latency predict", predict, needle=key, config=cfg)
            if key in ("overhead_ms", "context_scale") and v in ("-1", "nan"):
                add(
                    f"table-search:{key}={v}",
                    "table-meta",
                    "search",
                    [*tsearch, "--out", o(f"ts-{key}-{v}")],
                    needle=key,
                    config=cfg,
                )
    lines = table.splitlines(keepends=True)
    body_at = next(i for i, line in enumerate(lines) if line.startswith("key,"))
    row = lines[body_at + 1].split(",")

    def with_cell(col: int, value: str) -> str:
        r = list(row)
        r[col] = value
        return "".join(lines[: body_at + 1]) + ",".join(r) + "".join(lines[body_at + 2 :])

    cols = lines[body_at].strip().split(",")
    for name, text in (
        ("latency-nan", with_cell(cols.index("latency_ms"), "nan")),
        ("latency-neg", with_cell(cols.index("latency_ms"), "-1")),
        ("latency-digits", with_cell(cols.index("latency_ms"), "9" * 5000)),
        ("weight-bytes-abc", with_cell(cols.index("weight_bytes"), "abc")),
        ("in-h-digits", with_cell(cols.index("in_h"), "9" * 5000)),
        ("weight-bytes-neg", with_cell(cols.index("weight_bytes"), "-99999999")),
        ("no-header", "".join(lines[body_at:])),
        ("binary", None),
        ("nonutf8", None),
        ("quote", table + '"unterminated,\n'),
        ("empty", ""),
        ("dup-key", table + lines[body_at + 1]),
        ("extra-col", table.replace("key,kind", "key,zzz,kind", 1)),
    ):
        content: str | bytes = (
            text if text is not None else (bytes(range(256)) * 64 if name == "binary" else b"\xff\xfe" + table.encode())
        )
        add(
            f"table:{name}",
            "table-body",
            "latency predict",
            predict,
            config=w.tables_config(f"tb-{name}", {"pixel6-cpu.csv": content}),
        )
    d = w.tabs / "t-fifo"
    d.mkdir(exist_ok=True)
    if not (d / "pixel6-cpu.csv").exists():
        os.mkfifo(d / "pixel6-cpu.csv")
    add(
        "table:fifo",
        "table-body",
        "latency predict",
        predict,
        config=w.config("t-fifo", {"latency": {"tables_dir": str(d)}}),
    )
    d2 = w.tabs / "t-dir"
    (d2 / "pixel6-cpu.csv").mkdir(parents=True, exist_ok=True)
    add(
        "table:dir",
        "table-body",
        "latency predict",
        predict,
        config=w.config("t-dir", {"latency": {"tables_dir": str(d2)}}),
    )
    cat = f["catalog"]
    dev = "[devices.pixel6-cpu.model]"
    fit = "[devices.pixel6-cpu.fit]"

    def sub(section: str, key: str, value: str) -> str:
        head, _, rest = cat.partition(section + "\n")
        block, sep, tail = rest.partition("\n\n")
        block = (
            re.sub(rf"^{key} = .*$", f"{key} = {value}", block, flags=re.M)
            if re.search(rf"^{key} = ", block, re.M)
            else block + f"\n{key} = {value}"
        )
        return head + section + "\n" + block + sep + tail

    for name, text in (
        ("peak-nan", sub(dev, "peak_gmacs", "nan")),
        ("fixed-neg", sub(dev, "fixed_ms", "-1.0")),
        ("overhead-inf", sub(dev, "op_overhead_ms", "inf")),
        ("eff-zero", sub(dev, "eff_dwconv", "0.0")),
        ("eff-huge", sub(dev, "eff_conv", "1e308")),
        ("bw-digits", sub(dev, "bandwidth_gbs", "9" * 5000)),
        ("ridge-nan", sub("[devices.pixel6-cpu]", "ridge_point_ref", "nan")),
        ("ridge-inf", sub("[devices.pixel6-cpu]", "ridge_point_ref", "inf")),
        ("fit-n-abc", sub(fit, "n", '"abc"')),
        ("fit-n-nan", sub(fit, "n", "nan")),
        ("fit-n-neg", sub(fit, "n", "-3")),
        ("fit-mape-abc", sub(fit, "mape_pct", '"x"')),
        ("fit-mape-nan", sub(fit, "mape_pct", "nan")),
        ("fit-loo-abc", sub(fit, "loo_mape_pct", '"x"')),
        ("fit-loo-inf", sub(fit, "loo_mape_pct", "inf")),
        ("fit-not-table", cat.replace(fit, "[devices.pixel6-cpu.fitx]")),
        (
            "class-missing",
            cat.replace(
                'class = "cpu"\ndtype = "int8"\nruntime = "TFLite XNNPACK (INT8, fastest core)"\ndescription = "Google Pixel 6 CPU"',
                'dtype = "int8"\nruntime = "x"',
                1,
            ),
        ),
        ("devices-list", "schema = 1\ndevices = [1, 2]\n"),
        ("schema-str", cat.replace("schema = 1", 'schema = "1"')),
        ("empty", ""),
        ("binary", None),
        ("deep", "schema = 1\nx = " + "[" * 100_000 + "]" * 100_000),
        ("unsupported-str", sub("[devices.pixel6-cpu]", "unsupported", '"attention"')),
        ("free-many", sub("[devices.pixel6-cpu]", "free", '["peak_gmacs", "peak_gmacs"]')),
    ):
        content = text if text is not None else bytes(range(256)) * 64
        cfg = w.tables_config(f"cat-{name}", {"devices.toml": content})
        add(f"catalog:{name}", "catalog", "latency targets", ["latency", "targets"], config=cfg)
        if name in ("ridge-nan", "fit-n-neg", "fit-mape-nan", "eff-huge"):
            add(
                f"catalog-fit:{name}",
                "catalog",
                "latency fit --dry-run",
                ["latency", "fit", "--target", "pixel6-cpu", "--dry-run"],
                config=cfg,
            )
    d3 = w.tabs / "cat-fifo"
    d3.mkdir(exist_ok=True)
    if not (d3 / "devices.toml").exists():
        os.mkfifo(d3 / "devices.toml")
    add(
        "catalog:fifo",
        "catalog",
        "latency targets",
        ["latency", "targets"],
        config=w.config("cat-fifo", {"latency": {"tables_dir": str(d3)}}),
    )
    d4 = w.tabs / "cat-dir"
    (d4 / "devices.toml").mkdir(parents=True, exist_ok=True)
    add(
        "catalog:dir",
        "catalog",
        "latency targets",
        ["latency", "targets"],
        config=w.config("cat-dir", {"latency": {"tables_dir": str(d4)}}),
    )
    add(
        "catalog:valid-copy",
        "valid",
        "latency targets",
        ["latency", "targets"],
        expect="ok",
        config=w.tables_config("cat-valid", {"devices.toml": cat}),
    )


def _checkpoint_cases(add: Any, w: Work, f: dict[str, str], o: Any, train: list[str]) -> None:
    """Checkpoints and few-shot manifests with corrupt metadata."""
    cks = sorted(k for k in f if k.startswith("ck."))
    for k in cks:
        name = k.removeprefix("ck.")
        # info reads metadata only: a checkpoint without weights, or whose data is a FIFO, is still described
        ok = "any" if name in ("no_model", "data_fifo") else "error"
        add(
            f"ck-info:{name}",
            "checkpoint",
            "supernet info",
            ["supernet", "info", f[k]],
            expect=ok,
            timeout=30 if "fifo" in name else None,
        )
        add(
            f"ck-eval:{name}",
            "checkpoint",
            "supernet eval",
            ["supernet", "eval", f[k], "--sample", "1"],
            timeout=30 if "fifo" in name else None,
        )
        if name in (
            "res_abc",
            "seed_abc",
            "valfrac_abc",
            "no_data",
            "classes_int",
            "meta_list",
            "space_phase_bad",
            "evil",
        ):
            add(
                f"ck-extract:{name}",
                "checkpoint",
                "supernet extract",
                ["supernet", "extract", f[k], MEMBER, "-o", o(f"ckx-{name}.pt")],
            )
            add(
                f"ck-init:{name}",
                "checkpoint",
                "train --init-from",
                [*train, "--init-from", f[k], "--out", o(f"cki-{name}.pt")],
            )
    add("ck-info:valid", "valid", "supernet info", ["supernet", "info", f["ck"]], expect="ok")
    add("ck-info:valid-json", "valid", "supernet info", ["supernet", "info", f["ck"], "--json"], expect="ok")
    mans = sorted(k for k in f if k.startswith("manifest."))
    for k in mans:
        name = k.removeprefix("manifest.")
        ok = "any" if name == "shot_missing" else "error"  # info reports a shot not trained yet: no error
        add(f"manifest-info:{name}", "manifest", "supernet info", ["supernet", "info", f[k]], expect=ok)
        add(f"manifest-eval:{name}", "manifest", "supernet eval", ["supernet", "eval", f[k], "--sample", "1"])
    add("manifest-info:valid", "valid", "supernet info", ["supernet", "info", f["manifest"]], expect="ok")
    add(
        "manifest-eval:valid",
        "valid",
        "supernet eval",
        ["supernet", "eval", f["manifest"], "--sample", "1"],
        expect="ok",
    )


def _data_cases(add: Any, w: Work, f: dict[str, str], o: Any, train: list[str]) -> None:
    """Training data: .npz files and image folders."""
    for name in (
        "truncated",
        "object",
        "nanfloat",
        "oneclass",
        "neglabels",
        "floatlabels",
        "empty_images",
        "fivedim",
        "bigclassnames",
        "hugeshape",
    ):
        add(
            f"npz:{name}",
            "data",
            "train --data",
            [*_replace(train, "--data", f[f"{name}.npz"]), "--out", o(f"npz-{name}.pt")],
        )
    for name in ("bomb", "garbage_png", "trunc_png", "oneclass_dir", "emptydir"):
        add(
            f"folder:{name}",
            "data",
            "train --data",
            [*_replace(train, "--data", f[name]), "--out", o(f"dir-{name}.pt")],
        )
    add(
        "npz:valid",
        "valid",
        "train --data",
        [*_replace(train, "--data", f["good.npz"]), "--out", o("npz-valid.pt")],
        expect="ok",
    )
    add(
        "folder:valid",
        "valid",
        "train --data",
        [*_replace(train, "--data", f["imgs"]), "--out", o("dir-valid.pt")],
        expect="ok",
    )


def _training_cases(add: Any, w: Work, f: dict[str, str], o: Any) -> None:
    """``train``, ``eval`` and ``distill-data``: options, data, stores, teachers, weights."""
    base = [
        "train",
        TRAIN_ARCH,
        "--data",
        "builtin:4",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--max-steps",
        "1",
        "--json",
    ]
    for opt, values in (
        ("--epochs", ["0", "-1", "1e3", "abc"]),
        ("--lr", ["0", "-1", "inf", "nan", "1e9"]),
        ("--batch-size", ["0", "1", "-8"]),
        ("--warmup", ["1", "-0.1", "nan"]),
        ("--label-smoothing", ["1", "-0.1", "inf"]),
        ("--ema-decay", ["0", "1", "nan"]),
        ("--weight-decay", ["-1", "inf"]),
        ("--grad-clip", ["-1", "nan"]),
        ("--aug", ["bogus", ""]),
        ("--amp", ["bf16", "fp16", "bogus"]),
        ("--device", ["cuda", "tpu9", "cuda:7", ""]),
        ("--resolution", ["4", "5000", "0"]),
        ("--seed", ["-1", "99999999999"]),
        ("--threads", ["0", "-2"]),
        ("--optimizer", ["adam", ""]),
    ):
        for v in values:
            add(
                f"train-cmd:{opt}={v}",
                "train-option",
                f"train {opt}",
                [*base, opt, v, "--out", o(f"t-{opt}-{v}")],
                needle=opt,
            )
    for kind in ("fifo", "dir", "missing", "devzero"):
        data = "/dev/zero" if kind == "devzero" else f[f"{kind}.npz"]
        add(
            f"train-cmd:data-{kind}",
            "train-data",
            "train --data",
            [*_replace(base, "--data", data), "--out", o(f"td-{kind}")],
        )
    add("train-cmd:data-empty", "train-data", "train --data", [*_replace(base, "--data", ""), "--out", o("td-empty")])
    add("train-cmd:out-file", "output-path", "train --out", [*base, "--out", f["trained"] + "/run.json"])
    add("train-cmd:out-under-file", "output-path", "train --out", [*base, "--out", f["trained"] + "/run.json/x"])
    long_arch = f["conv-small"].replace("res224", "res32").replace("cls1000", "cls10")  # ~480 characters
    add(
        "train-cmd:long-arch",
        "valid",
        "train ARCH",
        [*_swap(base, TRAIN_ARCH, long_arch), "--out", o("t-long")],
        expect="ok",
    )
    dbase = ["train", TRAIN_ARCH, "--epochs", "1", "--batch-size", "8", "--max-steps", "1", "--json"]
    for v in (
        "{s}:-1",
        "{s}:abc",
        "{s}:0",
        "{s}:nan",
        "{s}:inf",
        "{s}:",
        "",
        "{missing}",
        "{truncated}",
        "{noshards}",
        "{badmanifest}",
        "{dir}",
    ):
        arg = v.format(
            s=f["store"],
            missing=w.p("nostore"),
            truncated=f["store_truncated"],
            noshards=f["store_noshards"],
            badmanifest=f["store_badmanifest"],
            dir=f["run_empty"],
        )
        add(f"train-cmd:distill={v}", "store", "train --distill", [*dbase, "--distill", arg, "--out", o(f"tdist-{v}")])
    add(
        "train-cmd:distill+data",
        "store",
        "train --distill",
        [*dbase, "--distill", f["store"], "--data", "builtin:4", "--out", o("tdist-data")],
    )
    add(
        "train-cmd:distill-valid",
        "valid",
        "train --distill",
        [*dbase, "--distill", f["store"], "--out", o("tdist-ok")],
        expect="ok",
    )
    for name, teacher in (
        ("fifo", f["fifo.json"]),
        ("missing", w.p("none.onnx")),
        ("garbage-onnx", f["garbage.onnx"]),
        ("garbage-st", f["garbage.safetensors"]),
        ("garbage-pt", f["garbage_ckpt.pt"]),
        ("empty-dir", f["run_empty"]),
        ("supernet-x", "supernet:x"),
        ("bin", w.p("m.bin")),
    ):
        add(
            f"train-cmd:teacher-{name}",
            "teacher",
            "train --teacher",
            [*base, "--teacher", teacher, "--out", o(f"tt-{name}")],
        )
    ebase = ["eval", f["trained"], "--data", "builtin:4", "--json"]
    for name, weights in (
        ("fifo", f["fifo.json"]),
        ("missing", w.p("nothing")),
        ("garbage-st", f["garbage.safetensors"]),
        ("garbage-pt", f["garbage_ckpt.pt"]),
        ("empty-dir", f["run_empty"]),
        ("devzero", "/dev/zero"),
    ):
        add(
            f"eval-cmd:weights-{name}",
            "weights",
            "eval WEIGHTS",
            [*_swap(ebase, f["trained"], weights), "--out", o(f"e-{name}")],
        )
    for opt, v in (
        ("--batch-size", "0"),
        ("--split", "test"),
        ("--data", ""),
        ("--data", f["oneclass.npz"]),
        ("--device", "cuda"),
        ("--threads", "0"),
    ):
        argv = _replace(ebase, opt, v) if opt in ebase else [*ebase, opt, v]
        add(f"eval-cmd:{opt}={v[-20:]}", "eval-option", f"eval {opt}", [*argv, "--out", o(f"e-{opt}-{v[-6:]}")])
    xbase = ["distill-data", "--teacher", f["trained"], "--data", "builtin:4", "--aug", "none", "--json"]
    for opt, v in (
        ("--replicas", "0"),
        ("--replicas", "-1"),
        ("--shard-size", "0"),
        ("--batch-size", "0"),
        ("--val-fraction", "0"),
        ("--val-fraction", "1"),
        ("--val-fraction", "nan"),
        ("--aug", "bogus"),
        ("--resolution", "16"),
        ("--seed", "-1"),
        ("--teacher-mean", "1,2"),
        ("--teacher-norm", "bogus"),
        ("--data", f["store"]),
        ("--data", ""),
        ("--teacher", f["garbage.onnx"]),
        ("--teacher", f["fifo.json"]),
    ):
        argv = _replace(xbase, opt, v) if opt in xbase else [*xbase, opt, v]
        add(
            f"distill-data:{opt}={v[-24:]}",
            "distill-data",
            f"distill-data {opt}",
            [*argv, "--out", o(f"x-{opt}-{v[-8:]}")],
        )
    add(
        "distill-data:out-store-other-aug",
        "store",
        "distill-data --out",
        [*_swap(xbase, "none", "mixup"), "--out", f["store"]],
    )


def _space_cases(add: Any, w: Work, f: dict[str, str], o: Any, search: list[str], train: list[str]) -> None:
    """Space TOML values that the schema should refuse (or accept)."""
    for name in ("slots", "coarse_k9", "coarse_k7", "coarse_e0", "space_nan", "space_inf"):
        p = f[f"{name}.toml"]
        add(f"space:{name}", "space-values", "space show", ["space", "show", p])
        add(f"space-sample:{name}", "space-values", "space sample", ["space", "sample", p, "--n", "2"])
        add(
            f"space-search:{name}",
            "space-values",
            "search --space",
            [*_replace(search, "--space", p), "--trials", "2", "--out", o(f"sp-{name}")],
        )
    add("space:slots-ok", "valid", "space show", ["space", "show", f["slots_ok.toml"]], expect="ok")
    add("space:name-typo", "space-values", "space show", ["space", "show", "mnv4-conv-smal"])


# ----------------------------------------------------------------------------------------------
# running and classifying
# ----------------------------------------------------------------------------------------------


def classify(case: Case, rc: int | None, err: str, timed_out: bool) -> tuple[str, str]:
    """(outcome, message) of one run."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("mnv4-nas: error:")]
    msg = (errors or lines or [""])[-1][:300]
    if timed_out:
        return "hang", msg
    if "internal error" in err:
        return "internal", next(ln for ln in lines if "internal error" in ln)[:300]
    if "Traceback (most recent call last)" in err:
        return "traceback", msg
    if rc == 0:
        return ("silent" if case.expect == "error" else "ok"), msg
    if rc == 2 and len(errors) == 1:
        if case.expect == "ok":
            return "refused", msg
        if len(lines) > 1:
            return "noisy", " | ".join(lines)[:300]
        if case.needle and case.needle.lower() not in msg.lower():
            return "vague", msg
        return "clean", msg
    return "other", f"rc={rc}: {msg}"


def run_case(w: Work, case: Case, timeout: float) -> Outcome:
    """Run one case in a fresh process group; kill the group at the timeout."""
    argv = ([f"--config={case.config}"] if case.config else []) + case.argv
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", _boot(w.mem), *argv],
        cwd=w.run,
        env=w.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    timed_out = False
    try:
        _, err = proc.communicate(timeout=case.timeout or (min(timeout, 20.0) if _fifo(case) else timeout))
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    return _outcome(case, None if timed_out else proc.returncode, err, timed_out, time.monotonic() - t0)


_PREIMPORT = (
    "numpy",
    "pandas",
    "torch",
    "optuna",
    "onnx",
    "onnxruntime",
    "PIL.Image",
    "nas.cli",
    "nas.latency",
    "nas.supernet",
    "nas.search",
    "nas.export.onnx",
    "nas.model",
    "nas.data",
)


def run_forked(w: Work, cases: list[Case], jobs: int, timeout: float, on_done: Any) -> list[Outcome]:
    """Run every case in a child forked from this process once the code root's ``nas`` is imported;
    at most ``jobs`` at a time, each killed (its whole session) at its timeout."""
    import importlib
    import warnings

    sys.path.insert(0, str(w.code))
    for name in _PREIMPORT:
        importlib.import_module(name)
    import nas

    assert Path(nas.__file__).resolve().is_relative_to(w.code), nas.__file__
    warnings.simplefilter("ignore")
    logs = w.root / "logs"
    logs.mkdir(exist_ok=True)
    pending = list(enumerate(cases))
    running: dict[int, tuple[int, Case, float, float]] = {}
    results: dict[int, Outcome] = {}
    while pending or running:
        while pending and len(running) < jobs:
            i, case = pending.pop(0)
            pid = _fork_case(w, case, logs / f"{i}.err")
            limit = case.timeout or (min(timeout, 20.0) if _fifo(case) else timeout)
            running[pid] = (i, case, time.monotonic(), limit)
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            now = time.monotonic()
            for cpid, (i, case, t0, limit) in list(running.items()):
                if now - t0 > limit:
                    os.killpg(cpid, signal.SIGKILL)
                    os.waitpid(cpid, 0)
                    del running[cpid]
                    results[i] = _outcome(case, None, (logs / f"{i}.err").read_text(errors="replace"), True, now - t0)
                    on_done(results[i], len(results), len(cases))
            time.sleep(0.02)
            continue
        if pid not in running:
            continue
        i, case, t0, _ = running.pop(pid)
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever the case left running in its session
        except ProcessLookupError:
            pass
        rc = os.waitstatus_to_exitcode(status)
        results[i] = _outcome(case, rc, (logs / f"{i}.err").read_text(errors="replace"), False, time.monotonic() - t0)
        on_done(results[i], len(results), len(cases))
    return [results[i] for i in range(len(cases))]


def _fifo(case: Case) -> bool:
    # a FIFO blocks its reader forever: 20 s shows that as well as a minute would
    return any("fifo" in a for a in [*case.argv, case.config or ""])


def _fork_case(w: Work, case: Case, err_path: Path) -> int:
    argv = ([f"--config={case.config}"] if case.config else []) + case.argv
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: never returns
        import resource
        import traceback

        os.setsid()
        limit = int(w.mem * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir(w.run)
        os.environ.clear()
        os.environ.update({k: v for k, v in w.env.items() if k != "PYTHONPATH"})
        fd_in = os.open(os.devnull, os.O_RDONLY)
        fd_out = os.open(os.devnull, os.O_WRONLY)
        fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((fd_in, 0), (fd_out, 1), (fd_err, 2)):
            os.dup2(fd, target)
        sys.argv = ["mnv4-nas", *argv]
        try:
            from nas.cli import main as cli_main

            code = cli_main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _outcome(case: Case, rc: int | None, err: str, timed_out: bool, seconds: float) -> Outcome:
    argv = ([f"--config={case.config}"] if case.config else []) + case.argv
    outcome, msg = classify(case, rc, err, timed_out)
    shown = [a if len(a) < 200 else a[:80] + f"…({len(a)} chars)" for a in argv]
    return Outcome(case.id, case.klass, case.surface, case.expect, outcome, rc, round(seconds, 2), msg, argv=shown)


def _mount_full(w: Work) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return
    d = w.root / "full"
    d.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)], capture_output=True).returncode == 0:
        (d / "deep").mkdir()
        with open(d / "filler", "wb", buffering=0) as fh:  # fill it to the last byte: every later write gets ENOSPC
            try:
                while fh.write(b"\0" * 1024):
                    pass
            except OSError:
                pass
        w.full = d


def _umount_full(w: Work) -> None:
    if w.full is not None:
        subprocess.run(["umount", str(w.full)], capture_output=True)


def report(results: list[Outcome], out: Path, code: Path, seconds: float) -> dict[str, Any]:
    """Print and write counts per outcome, per class, and the table of non-clean cases."""
    counts = Counter(r.outcome for r in results)
    by_class: dict[str, Counter[str]] = defaultdict(Counter)
    for r in results:
        by_class[r.klass][r.outcome] += 1
    order = ["clean", "ok", *BAD_OUTCOMES]
    summary = {
        "code_root": str(code),
        "tried": len(results),
        "seconds": round(seconds, 1),
        "counts": {k: counts.get(k, 0) for k in order},
        "by_class": {k: dict(v) for k, v in sorted(by_class.items())},
    }
    print(f"\ncode root {code}: {len(results)} cases in {seconds:.0f} s")
    print("  ".join(f"{k} {counts.get(k, 0)}" for k in order))
    print(f"\n{'class':<16}" + "".join(f"{k:>10}" for k in order))
    for k, v in sorted(by_class.items()):
        print(f"{k:<16}" + "".join(f"{v.get(x, 0):>10}" for x in order))
    bad = [r for r in results if r.outcome not in ("clean", "ok")]
    if bad:
        print(f"\n{len(bad)} cases neither clean nor ok:")
        for r in sorted(bad, key=lambda r: (r.outcome, r.id)):
            print(f"  {r.outcome:<9} {r.id:<36} {r.message[:150]}")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as fh:
        wr = csv.DictWriter(fh, fieldnames=[k for k in asdict(results[0]) if k != "argv"] + ["argv"])
        wr.writeheader()
        for r in results:
            wr.writerow({**asdict(r), "argv": " ".join(r.argv)})
    (out / "results.json").write_text(json.dumps({**summary, "cases": [asdict(r) for r in results]}, indent=1) + "\n")
    print(f"\nwrote {out / 'results.csv'} and {out / 'results.json'}")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=HERE.parent, help="source checkout whose nas package runs")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=45.0, help="seconds per case before it counts as a hang")
    ap.add_argument("--mem-gib", type=float, default=3.0, help="address-space limit per case")
    ap.add_argument("--only", default=None, help="regex on case ids")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--subprocess", action="store_true", help="a fresh Python per case instead of a fork")
    args = ap.parse_args()
    code = args.root.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bad-input-campaign-"))
    w = Work(tmp, code, args.mem_gib)
    try:
        _mount_full(w)
        t0 = time.monotonic()
        print(f"work folder {tmp}; building fixtures with {code} …", flush=True)
        f = make_fixtures(w)
        cases = build_cases(w, f)
        if args.only:
            cases = [c for c in cases if re.search(args.only, c.id)]
        if args.list:
            for c in cases:
                print(f"{c.id:<40} {c.klass:<15} {c.expect:<5} {' '.join(c.argv)[:100]}")
            return
        print(f"{len(cases)} cases, {args.jobs} at a time (fixtures took {time.monotonic() - t0:.0f} s)", flush=True)
        t1 = time.monotonic()

        def progress(r: Outcome, done: int, total: int) -> None:
            if r.outcome not in ("clean", "ok") or done % 25 == 0:
                print(f"[{done}/{total}] {r.outcome:<9} {r.id} {r.message[:100]}", flush=True)

        if args.subprocess:
            done = 0

            def one(c: Case) -> Outcome:
                nonlocal done
                r = run_case(w, c, args.timeout)
                done += 1
                progress(r, done, len(cases))
                return r

            with ThreadPoolExecutor(args.jobs) as pool:
                results = list(pool.map(one, cases))
        else:
            results = run_forked(w, cases, args.jobs, args.timeout, progress)
        if (w.root / "PWNED").exists():
            print("WARNING: a malicious pickle ran code")
        report(results, args.out or tmp / "results", code, time.monotonic() - t1)
    finally:
        _umount_full(w)
        if not args.keep and (args.out is not None or args.list):
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
