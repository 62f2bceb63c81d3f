"""``--teacher`` values: weights written by ``mnv4-nas train`` (its output folder, ``model.safetensors``
or ``checkpoint.pt``), an ONNX classifier file, or ``supernet:CKPT@ARCH`` (a supernet's member).

Composes :mod:`nas.train` (teachers) with this package's members (nas.train must not import nas.supernet);
``mnv4-nas train --teacher`` and ``mnv4-nas distill-data --teacher`` both open their teacher here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nas.errors import NasError
from nas.inputs import check_finite, regular_file
from nas.zoo import resolve

if TYPE_CHECKING:
    from nas.data import Dataset
    from nas.train import Teacher

TEACHER_FORMS = (
    "a 'mnv4-nas train' output folder (or its model.safetensors / checkpoint.pt), model.onnx (any ONNX classifier) "
    "or supernet:CKPT@ARCH (a supernet's member)"
)
#: --teacher-norm names -> (mean, std); "data" is the data set's own statistics
NORMS = {"imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))}


@dataclass(frozen=True)
class TeacherArg:
    """A parsed ``--teacher``: ``kind`` ``"trained"`` (``path`` a train output folder or its weights),
    ``"onnx"`` (``path`` the model) or ``"supernet"`` (``path`` the checkpoint or few-shot manifest,
    ``arch`` the member as given)."""

    kind: str
    path: Path
    arch: str | None = None


def parse_teacher(text: str) -> TeacherArg:
    """``model.onnx`` or ``supernet:CKPT@ARCH``; ``CKPT`` is cut at the first '@' after which an existing
    file ends, so paths holding '@' work. One-line errors name ``--teacher``."""
    if text.startswith("supernet:"):
        rest = text.removeprefix("supernet:")
        cuts = [i for i, c in enumerate(rest) if c == "@"]
        for i in cuts:
            if Path(rest[:i]).expanduser().is_file():
                return TeacherArg("supernet", Path(rest[:i]).expanduser(), rest[i + 1 :])
        if not cuts or not rest[: cuts[0]]:
            raise NasError(f"--teacher {text}: expected supernet:CKPT@ARCH (ARCH a zoo name, spec file or arch string)")
        raise NasError(f"--teacher {text}: no such supernet checkpoint {rest[: cuts[0]]}")
    p = Path(text).expanduser()
    if p.suffix.lower() == ".onnx":
        return TeacherArg("onnx", regular_file(p, "ONNX teacher"))
    if p.suffix.lower() in (".safetensors", ".pt") or p.is_dir():
        return TeacherArg("trained", p)
    raise NasError(f"--teacher {text}: expected {TEACHER_FORMS}")


def parse_triple(text: str, name: str) -> tuple[float, float, float]:
    """``"0.5,0.5,0.5"`` → three finite floats (one-line error naming ``name``)."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise NasError(f"{name} takes 3 comma-separated numbers, one per channel (got {text!r})")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise NasError(f"{name}: {text!r} is not 3 numbers") from None
    return tuple(check_finite(v, name) for v in vals)  # type: ignore[return-value]


def open_teacher(
    arg: TeacherArg,
    *,
    resolution: int | None,
    output: str = "auto",
    device: str | None = None,
    threads: int | None = None,
) -> tuple[Teacher, tuple[str, ...] | None]:
    """(the teacher, its class names when it knows them). ``resolution``: used by ONNX models whose
    input size is dynamic. A supernet member runs on ``device`` (default CPU)."""
    from nas.train import ModuleTeacher, OnnxTeacher

    if arg.kind == "trained":
        from nas.train import load_trained

        tm = load_trained(arg.path)
        info = {"arch": tm.spec.arch, "weights": tm.weights, "sha256": _sha256(tm.path)}
        return ModuleTeacher(
            tm.model.to(device or "cpu"), tm.mean, tm.std, tm.num_classes, tm.resolution, source=str(tm.path), info=info
        ), tm.classes
    if arg.kind == "onnx":
        return OnnxTeacher(arg.path, output=output, resolution=resolution, threads=threads, device=device), None
    from nas.supernet import member_model

    assert arg.arch is not None
    m = member_model(arg.path, resolve(arg.arch)[0])
    model = m.model.to(device or "cpu")
    source = f"supernet:{m.checkpoint}@{m.arch.arch}"
    return ModuleTeacher(
        model, m.mean, m.std, len(m.classes), m.resolution, source=source, info=m.identity()
    ), m.classes


def _sha256(path: Path) -> str:
    """The weights' identity: a teacher rebuilt from other weights is another teacher (resume checks)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            h.update(block)
    return h.hexdigest()


def normalize_onnx(teacher: Teacher, norm: str, mean: str | None, std: str | None, data: Dataset) -> None:
    """Apply ``--teacher-norm``/``--teacher-mean``/``--teacher-std`` to an ONNX teacher; refused for
    others (a member carries its own statistics)."""
    from nas.train import OnnxTeacher

    explicit = mean is not None or std is not None
    if not isinstance(teacher, OnnxTeacher):
        if explicit or norm != "imagenet":
            raise NasError("--teacher-norm/--teacher-mean/--teacher-std apply to ONNX teachers only")
        return
    if (mean is None) != (std is None):
        raise NasError("give --teacher-mean and --teacher-std together")
    if mean is not None and std is not None:
        teacher.set_normalization(parse_triple(mean, "--teacher-mean"), parse_triple(std, "--teacher-std"))
    elif norm == "data":
        teacher.set_normalization(data.mean, data.std)
    else:
        teacher.set_normalization(*NORMS[norm])


__all__ = ["NORMS", "TEACHER_FORMS", "TeacherArg", "normalize_onnx", "open_teacher", "parse_teacher", "parse_triple"]
