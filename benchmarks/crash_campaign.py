"""kill -9 at random points of each resumable command, resume, and count what the crashes cost.

For every command: one uninterrupted reference run; then, in a fresh folder, ``--kills`` runs each
killed (SIGKILL to its whole process group) after a random share (seeded) of the reference's wall
time, each resuming the previous one, the state on disk read after every kill; then a last run that
finishes. Printed per command:

- lost: records on disk after some kill (a completed trial, a table entry, a finished epoch, a
  listed shard) that are gone or unreadable at the end;
- duplicated: records present twice or beyond the count asked for (a trial over the stage's total,
  a table key twice, an epoch trained twice, a shard listed twice);
- changed: records whose content differs between a kill and the end, or from the uninterrupted run
  where the command is deterministic (supernet/train weights, distillation shards);
- waits: resumes that stalled on a dead process's lock (optuna's "taking longer than" warning);
- temp left: temporary files/folders left behind (``.*.tmp`` in the output, optuna lock files,
  ``mnv4nas-*`` folders in the temp dir the commands were given with ``TMPDIR``).

Commands: ``search`` (conv-small, params estimator, 20+20 trials), ``latency profile`` (a tiny 32 px
space, 3 runs × 1 session per entry), ``supernet train`` (the tiny space, builtin:20, 6 epochs),
``train`` and ``distill-data`` (skipped when this install has no such command). Exit status 1 when
any count is not zero. Usage: ``python benchmarks/crash_campaign.py [--kills 3] [--seed 0]
[--only search,profile] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXE = shutil.which("mnv4-nas") or os.path.join(os.path.dirname(sys.executable), "mnv4-nas")
#: The tiny conv space the tests use (t-conv, 32 px), shipped once in tests/.
TINY_SPACE = (Path(__file__).resolve().parents[1] / "tests" / "tiny_conv_space.toml").read_text(encoding="utf-8")
TINY_ARCH = "res32|cn_r1_k3_s2_c8|er_r1_k3_s1_e2_c8|uir_r1_a3_k5_s2_e4_c16|uir_r1_a0_k3_s1_e2_c16|head_c32_h48_cls10"
SEARCH_TRIALS = {"coarse": 20, "fine": 20}
EPOCHS = 6  # supernet train / train: a few seconds each on builtin:20 at 32 px


@dataclass
class Counts:
    """What the crashes cost one command."""

    lost: int = 0
    duplicated: int = 0
    changed: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Case:
    """A resumable command: how to run it in a folder, read its state, and judge the end."""

    name: str
    argv: Callable[[Path], list[str]]
    snapshot: Callable[[Path], Any]
    check: Callable[[Path, Path, list[Any]], Counts]
    env: dict[str, str] = field(default_factory=dict)


# --- running and killing ---------------------------------------------------------------------------


@dataclass
class Run:
    rc: int | None  # None: killed
    seconds: float
    stderr: str


def _run(argv: list[str], cwd: Path, env: dict[str, str], kill_after: float | None, log: Path) -> Run:
    """Run ``argv`` in its own process group; SIGKILL the group after ``kill_after`` seconds."""
    t0 = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            argv, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True
        )
        try:
            proc.wait(timeout=kill_after)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
    _reap_group(proc.pid)
    return Run(None if killed else proc.returncode, time.monotonic() - t0, log.read_text(errors="replace"))


def _reap_group(pgid: int) -> None:
    """Kill what is left of a process group (e.g. Ray helpers that outlived the command)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def campaign(case: Case, work: Path, kills: int, rng: random.Random) -> tuple[Counts, dict[str, Any]]:
    """Reference run, ``kills`` killed runs, a finishing run; the counts and run statistics."""
    ref, crash = work / "reference", work / "crashed"
    ref.mkdir(parents=True)
    crash.mkdir(parents=True)
    r = _run(case.argv(ref), ref, case.env, None, work / "reference.log")
    stats: dict[str, Any] = {"kills": 0, "waits": 0, "reference_s": r.seconds}
    if r.rc != 0:
        return Counts(changed=1, notes=[f"reference run failed (rc {r.rc}): {_last_line(r.stderr)}"]), stats
    snaps = []
    for i in range(kills):
        k = _run(case.argv(crash), crash, case.env, rng.uniform(0.15, 0.9) * r.seconds, work / f"killed-{i}.log")
        stats["waits"] += "taking longer than" in k.stderr
        if k.rc is None:
            stats["kills"] += 1
        elif k.rc != 0:
            return Counts(changed=1, notes=[f"resume {i} failed (rc {k.rc}): {_last_line(k.stderr)}"]), stats
        snaps.append(case.snapshot(crash))
    last = _run(case.argv(crash), crash, case.env, None, work / "final.log")
    stats["waits"] += "taking longer than" in last.stderr
    stats["final_s"] = last.seconds
    if last.rc != 0:
        return Counts(changed=1, notes=[f"final run failed (rc {last.rc}): {_last_line(last.stderr)}"]), stats
    return case.check(crash, ref, snaps), stats


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def leftovers(folder: Path, tmp: Path) -> list[str]:
    """Temporary files under ``folder``, and anything named ``mnv4nas-*`` in the commands' temp dir."""
    left = [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.name.endswith(".tmp")
        or re.search(r"\.lock[0-9a-f-]*\.rename$", p.name)
        or p.name.endswith(".journal.lock")
    ]
    return left + [f"$TMPDIR/{p.name}" for p in tmp.iterdir() if p.name.startswith("mnv4nas-")]


# --- search ----------------------------------------------------------------------------------------


def search_argv(out: Path) -> list[str]:
    return [
        EXE,
        "search",
        "--space",
        "mnv4-conv-small",
        "--estimator",
        "params",
        "--target",
        "pixel8-edgetpu",
        "--budget",
        "0.72ms",
        "--coarse-trials",
        str(SEARCH_TRIALS["coarse"]),
        "--fine-trials",
        str(SEARCH_TRIALS["fine"]),
        "--seed",
        "0",
        "--out",
        str(out / "run"),
        "--json",
    ]


def search_snapshot(folder: Path) -> dict[tuple[str, int], Any]:
    """Completed trials per (stage, number): their parameters and values, as the journal holds them."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    journal = folder / "run" / "study.journal"
    if not journal.exists():
        return {}
    storage = JournalStorage(JournalFileBackend(str(journal)))
    out = {}
    for stage in SEARCH_TRIALS:
        try:
            study = optuna.load_study(study_name=f"run:{stage}", storage=storage)
        except KeyError:
            continue
        for t in study.get_trials(deepcopy=False):
            if t.state.name == "COMPLETE":
                out[(stage, t.number)] = (sorted(t.params.items()), t.values)
    return out


def search_check(folder: Path, ref: Path, snaps: list[dict[tuple[str, int], Any]]) -> Counts:
    final = search_snapshot(folder)
    c = _compare_snapshots(snaps, final)
    for stage, want in SEARCH_TRIALS.items():
        have = sum(1 for s, _ in final if s == stage)
        c.duplicated += max(0, have - want)
        if have < want:
            c.lost += want - have
            c.notes.append(f"{stage}: {have} of {want} trials")
    run = folder / "run"
    for name in ("best.json", "best.timm.txt", "trials.csv", "pareto.csv", "pareto.png", "summary.md", "run.json"):
        if not (run / name).is_file() or (run / name).stat().st_size == 0:
            c.lost += 1
            c.notes.append(f"{name} missing")
    try:
        record = json.loads((run / "run.json").read_text())
        if "finished" not in record:
            c.notes.append("run.json has no finished record")
    except (OSError, ValueError):
        c.lost += 1
        c.notes.append("run.json unreadable")
    return c


def _compare_snapshots(snaps: list[dict[Any, Any]], final: dict[Any, Any]) -> Counts:
    """Records seen after a kill must be at the end, unchanged."""
    c = Counts()
    seen: dict[Any, Any] = {}
    for s in snaps:
        seen.update(s)
    for key, value in seen.items():
        if key not in final:
            c.lost += 1
        elif final[key] != value:
            c.changed += 1
    return c


# --- latency profile -------------------------------------------------------------------------------


def _config(folder: Path) -> Path:
    cfg = folder / "nas.toml"
    if not cfg.exists():
        from nas.resources import data_dir

        tables = folder / "tables"
        tables.mkdir(exist_ok=True)
        shutil.copy(data_dir("latency_tables") / "devices.toml", tables / "devices.toml")
        (folder / "tiny.toml").write_text(TINY_SPACE)
        cfg.write_text(
            f'[project]\noutput_dir = "{folder / "results"}"\nseed = 0\n'
            f'[latency]\ntables_dir = "{tables}"\nruns = 3\nsessions = 1\nwarmup = 1\nguard = 0\n'
        )
    return cfg


def profile_argv(folder: Path) -> list[str]:
    cfg = _config(folder)
    return [
        EXE,
        "--config",
        str(cfg),
        "latency",
        "profile",
        "--space",
        str(folder / "tiny.toml"),
        "--no-zoo",
        "--calib",
        "3",
        "--json",
    ]


def profile_snapshot(folder: Path) -> dict[str, Any]:
    """Table rows (key → the row's text) as the file holds them; a key twice is kept as key#2."""
    path = folder / "tables" / "host-cpu.csv"
    if not path.exists():
        return {}
    rows: dict[str, Any] = {}
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    if not lines:
        return rows
    header = lines[0].split(",")
    k = header.index("key")
    ms = header.index("latency_ms")
    for ln in lines[1:]:
        cells = _csv_cells(ln)
        if len(cells) != len(header):
            continue  # a torn last line (cut by the next run)
        key = cells[k]
        while key in rows:
            key += "#2"
        rows[key] = float(f"{float(cells[ms]):.5g}")  # the final rewrite may print more digits
    return rows


def _csv_cells(line: str) -> list[str]:
    import csv

    return next(csv.reader([line]))


def profile_check(folder: Path, ref: Path, snaps: list[dict[str, Any]]) -> Counts:
    final = profile_snapshot(folder)
    c = _compare_snapshots(snaps, final)
    c.duplicated += sum(1 for k in final if k.endswith("#2"))
    want = {k for k in profile_snapshot(ref)}
    missing = want - set(final)
    if missing:
        c.lost += len(missing)
        c.notes.append(f"{len(missing)} keys of the uninterrupted run missing")
    # a key measured twice would show as a changed value (timings differ run to run)
    return c


# --- supernet train --------------------------------------------------------------------------------


def supernet_argv(folder: Path) -> list[str]:
    _config(folder)
    return [
        EXE,
        "supernet",
        "train",
        "--space",
        str(folder / "tiny.toml"),
        "--data",
        "builtin:20",
        "--epochs",
        str(EPOCHS),
        "--resolution",
        "32",
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--out",
        str(folder / "sn.pt"),
        "--json",
    ]


def _torch_state(path: Path) -> tuple[int | None, dict[str, Any] | None]:
    """(epochs done, model weights) of a supernet/train checkpoint; (None, None) when unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None, None
    meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    if isinstance(meta, str):  # supernet checkpoints keep their metadata as JSON text
        meta = json.loads(meta)
    epochs = meta.get("epochs_done", meta.get("epoch"))
    if epochs is None and isinstance(meta.get("history"), list):
        epochs = len(meta["history"])
    return (int(epochs) if epochs is not None else None), ckpt.get("model")


def supernet_snapshot(folder: Path) -> Any:
    path = folder / "sn.pt"
    return _torch_state(path)[0] if path.exists() else 0


def _weights_differ(a: dict[str, Any] | None, b: dict[str, Any] | None) -> int:
    """Tensors that differ (bitwise) between two state dicts; all of them when one is missing."""
    import torch

    if a is None or b is None:
        return max(len(a or {}), len(b or {}), 1)
    return sum(1 for k in set(a) | set(b) if k not in a or k not in b or not torch.equal(a[k], b[k]))


def _epochs_check(epochs_seen: list[Any], total: int) -> Counts:
    c = Counts()
    done = [e for e in epochs_seen]
    c.lost += sum(1 for e in done if e is None)  # a checkpoint unreadable after a kill
    known = [e for e in done if e is not None]
    c.lost += sum(1 for a, b in zip(known, known[1:], strict=False) if b < a)  # epochs went backwards
    c.duplicated += sum(1 for e in known if e > total)
    return c


def supernet_check(folder: Path, ref: Path, snaps: list[Any]) -> Counts:
    final_epochs, final = _torch_state(folder / "sn.pt")
    c = _epochs_check([*snaps, final_epochs], EPOCHS)
    if final_epochs != EPOCHS:
        c.lost += 1
        c.notes.append(f"final checkpoint has {final_epochs} epochs")
    c.changed += _weights_differ(final, _torch_state(ref / "sn.pt")[1])
    if c.changed:
        c.notes.append("weights differ from the uninterrupted run")
    return c


# --- train / distill-data (when installed) ---------------------------------------------------------


def train_argv(folder: Path) -> list[str]:
    _config(folder)
    return [
        EXE,
        "train",
        TINY_ARCH,
        "--data",
        "builtin:20",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        "32",
        "--threads",
        "1",
        "--seed",
        "0",
        "--device",
        "cpu",
        "--out",
        str(folder / "train"),
        "--json",
    ]


def train_snapshot(folder: Path) -> Any:
    path = folder / "train" / "checkpoint.pt"
    return _torch_state(path)[0] if path.exists() else 0


def _safetensors(path: Path) -> dict[str, Any] | None:
    try:
        from safetensors.torch import load_file

        return load_file(str(path))
    except Exception:
        return None


def train_check(folder: Path, ref: Path, snaps: list[Any]) -> Counts:
    c = _epochs_check(snaps, EPOCHS)
    try:
        import pandas as pd

        epochs = list(pd.read_csv(folder / "train" / "metrics.csv")["epoch"])
        c.duplicated += len(epochs) - len(set(epochs))
        if sorted(set(epochs)) != list(range(1, EPOCHS + 1)):
            c.lost += EPOCHS - len(set(epochs) & set(range(1, EPOCHS + 1)))
            c.notes.append(f"metrics.csv epochs {epochs}")
    except (OSError, ValueError, KeyError) as exc:
        c.lost += 1
        c.notes.append(f"metrics.csv unreadable ({type(exc).__name__})")
    c.changed += _weights_differ(
        _safetensors(folder / "train" / "model.safetensors"), _safetensors(ref / "train" / "model.safetensors")
    )
    if c.changed:
        c.notes.append("weights differ from the uninterrupted run")
    return c


def distill_argv(folder: Path) -> list[str]:
    cfg = _config(folder)
    teacher = folder / "teacher.onnx"
    if not teacher.exists():
        subprocess.run(
            [EXE, "--config", str(cfg), "export", TINY_ARCH, "--format", "onnx", "-o", str(teacher)],
            check=True,
            capture_output=True,
        )
    return [
        EXE,
        "--config",
        str(cfg),
        "distill-data",
        "--teacher",
        str(teacher),
        "--teacher-norm",
        "data",
        "--data",
        "builtin:20",
        "--replicas",
        "2",
        "--shard-size",
        "32",
        "--batch-size",
        "16",
        "--seed",
        "0",
        "--threads",
        "1",
        "--out",
        str(folder / "store"),
        "--json",
    ]


def distill_snapshot(folder: Path) -> dict[str, Any]:
    """Shards the manifest lists (name → sha256); a name listed twice is kept as name#2."""
    path = folder / "store" / "manifest.json"
    try:
        shards = json.loads(path.read_text()).get("shards", [])
    except (OSError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for s in shards:
        name = str(s.get("file") or s.get("name") or s.get("index"))
        while name in out:
            name += "#2"
        out[name] = s.get("sha256")
    return out


def distill_check(folder: Path, ref: Path, snaps: list[dict[str, Any]]) -> Counts:
    import hashlib

    final = distill_snapshot(folder)
    c = _compare_snapshots(snaps, final)
    c.duplicated += sum(1 for k in final if k.endswith("#2"))
    want = distill_snapshot(ref)
    c.lost += len(set(want) - set(final))
    c.changed += sum(1 for k in set(want) & set(final) if want[k] != final[k])
    store = folder / "store"
    files = {p.name for p in store.glob("shard-*.safetensors")}
    c.duplicated += len(files - {k.split("#")[0] for k in final})  # shard files the manifest does not list
    for name, sha in final.items():
        p = store / name.split("#")[0]
        if p.is_file() and sha and hashlib.sha256(p.read_bytes()).hexdigest() != sha:
            c.changed += 1
    return c


# --- main ------------------------------------------------------------------------------------------


def _has_command(name: str) -> bool:
    return subprocess.run([EXE, name, "--help"], capture_output=True).returncode == 0


CASES: dict[str, Callable[[], Case]] = {
    "search": lambda: Case("search", search_argv, search_snapshot, search_check),
    "profile": lambda: Case("latency profile", profile_argv, profile_snapshot, profile_check),
    "supernet": lambda: Case("supernet train", supernet_argv, supernet_snapshot, supernet_check),
    "train": lambda: Case("train", train_argv, train_snapshot, train_check),
    "distill": lambda: Case("distill-data", distill_argv, distill_snapshot, distill_check),
}
NEEDS = {"train": "train", "distill": "distill-data"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=3, help="kill -9 per command (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    ap.add_argument("--only", default="", help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    names = [n for n in (args.only.split(",") if args.only else CASES) if n]
    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="crash-campaign-"))
    # The commands' own temp dir: whatever mnv4nas-* appears there was left by them.
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    rows, bad = [], False
    try:
        for name in names:
            if name in NEEDS and not _has_command(NEEDS[name]):
                rows.append((CASES[name]().name, "skipped", "", "", "", "", "", "", f"no `mnv4-nas {NEEDS[name]}`"))
                continue
            case = CASES[name]()
            case.env["TMPDIR"] = str(tmp)
            work = root / name
            counts, stats = campaign(case, work, args.kills, rng)
            left = leftovers(work, tmp)
            bad |= bool(counts.lost or counts.duplicated or counts.changed or stats["waits"] or left)
            extra = ""
            if name == "search" and counts.changed == 0 and "final_s" in stats:
                t = _run(search_argv(work / "crashed"), work / "crashed", case.env, None, work / "rerun.log")
                extra = f"rerun of the finished search {t.seconds:.1f} s (first run {stats['reference_s']:.1f} s)"
            notes = "; ".join([*counts.notes, *(f"left: {x}" for x in left[:3]), extra])
            rows.append(
                (
                    case.name,
                    str(stats["kills"]),
                    str(counts.lost),
                    str(counts.duplicated),
                    str(counts.changed),
                    str(stats["waits"]),
                    str(len(left)),
                    f"{stats['reference_s']:.0f}",
                    notes.strip("; "),
                )
            )
            print(f"{case.name}: done", file=sys.stderr, flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    head = ("command", "kills", "lost", "duplicated", "changed", "waits", "temp left", "run s", "notes")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
