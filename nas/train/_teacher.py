"""Teachers: anything that maps images to class probabilities (:class:`Teacher`).

- :class:`ModuleTeacher`: a torch classifier (a trained model, a supernet's member) with its statistics.
- :class:`OnnxTeacher`: any ONNX image classifier, run in onnxruntime, so a teacher can come from any
  framework.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import NasError
from nas.inputs import check_finite, regular_file

#: The normalisation most published classifiers (torchvision, timm, Keras ports) expect, and
#: :class:`OnnxTeacher`'s default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Largest |row sum - 1| of outputs taken as probabilities.
PROBS_TOLERANCE = 1e-3


class TeacherError(NasError):
    """A teacher that cannot be used (unreadable model, unsupported input, mismatch with the data)."""


@runtime_checkable
class Teacher(Protocol):
    """Class probabilities for images; used to build distillation stores and to distil online."""

    @property
    def num_classes(self) -> int:
        """Width of the probability rows it returns."""
        ...

    @property
    def resolution(self) -> int | None:
        """Image side it expects (px); ``None`` if any side works."""
        ...

    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """float images in [0, 1], N×3×R×R → float32 N×C probabilities (rows sum to 1). The teacher
        normalises the images itself, with the statistics it was trained with."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-able identity (kind, source file, classes, resolution), recorded where it is used."""
        ...


class ModuleTeacher:
    """A torch classifier (logits out) with the per-channel statistics it was trained with."""

    def __init__(
        self,
        model: torch.nn.Module,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
        num_classes: int,
        resolution: int | None,
        source: str = "module",
        temperature: float = 1.0,
        info: Mapping[str, Any] | None = None,
    ):
        """``info``: extra JSON-able identity (e.g. a checkpoint's sha256) that :meth:`describe` adds."""
        self.model = model.eval()
        self.info = dict(info or {})
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self._num_classes = int(num_classes)
        self._resolution = resolution
        self.source = source
        self.temperature = float(temperature)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def resolution(self) -> int | None:
        return self._resolution

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        dev = next(self.model.parameters()).device
        x = (images.to(dev, torch.float32) - self.mean.to(dev)) / self.std.to(dev)
        return F.softmax(self.model(x).float() / self.temperature, dim=1)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "module",
            "source": self.source,
            "num_classes": self.num_classes,
            "resolution": self.resolution,
            "temperature": self.temperature,
            **self.info,
        }


def _triple(v: Sequence[float], name: str, positive: bool) -> tuple[float, float, float]:
    if len(v) != 3:
        raise TeacherError(f"{name} takes 3 numbers, one per channel (got {len(v)})")
    lo = 0.0 if positive else None
    return tuple(check_finite(c, name, lo=lo, lo_open=positive) for c in v)  # type: ignore[return-value]


class OnnxTeacher:
    """An ONNX image classifier run in onnxruntime: input N×3×H×W (float32 or float16; static or
    dynamic batch and size), the first output N×C.

    Images are normalised with ``mean``/``std`` (default: ImageNet's, what most published
    classifiers expect; a model exported by mnv4-nas expects its training data's statistics).
    ``output``: ``"logits"`` (softmax applied, after dividing by ``temperature``), ``"probs"``
    (rows already sum to 1), or ``"auto"``: decided once, on a probe image, by whether the rows are
    non-negative and sum to 1. ``resolution`` is needed only for a model whose input size is dynamic.
    ``device``: ``"cpu"``, ``"cuda"`` (onnxruntime's CUDA provider), or ``None``: CUDA when this
    onnxruntime has it, else CPU.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        output: str = "auto",
        resolution: int | None = None,
        temperature: float = 1.0,
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        self.path = regular_file(path, "ONNX teacher").resolve()
        self.mean = _triple(mean, "teacher mean", False)
        self.std = _triple(std, "teacher std", True)
        self.temperature = check_finite(temperature, "teacher temperature", lo=0, lo_open=True)
        if output not in ("auto", "logits", "probs"):
            raise TeacherError(f"teacher output must be auto, logits or probs (got {output!r})")
        self.session = _session(self.path, threads, device)
        self._input, self._batch, self._resolution, self._dtype = _input_info(self.session, self.path, resolution)
        self._sha256: str | None = None
        self.output = "logits"
        probe = self._run(
            torch.rand(
                self._batch or 2, 3, self._resolution, self._resolution, generator=torch.Generator().manual_seed(0)
            )
        )
        if probe.ndim != 2 or probe.shape[1] < 2:
            raise TeacherError(f"{self.path}: the first output is {tuple(probe.shape)}; a classifier gives N x classes")
        self._num_classes = int(probe.shape[1])
        if not bool(torch.isfinite(probe).all()):
            raise TeacherError(f"{self.path}: the model returned non-finite outputs on a probe image")
        if output == "auto":
            output = "probs" if _rows_are_probs(probe) else "logits"
        elif output == "probs" and not _rows_are_probs(probe):
            raise TeacherError(f"{self.path}: outputs taken as probabilities do not sum to 1 (use output 'logits')")
        self.output = output

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def resolution(self) -> int | None:
        return self._resolution

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Normalise images with ``mean``/``std`` from now on (e.g. a data set's statistics, known
        only once the data set is loaded at the teacher's resolution)."""
        self.mean = _triple(mean, "teacher mean", False)
        self.std = _triple(std, "teacher std", True)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        """Raw first output for normalised images, in chunks of the model's fixed batch (padded)."""
        b = self._batch or len(x)
        outs = []
        for s in range(0, len(x), b):
            chunk = x[s : s + b]
            n = len(chunk)
            if n < b:
                chunk = torch.cat([chunk, chunk.new_zeros(b - n, *chunk.shape[1:])])
            try:
                out = self.session.run(None, {self._input: chunk.numpy().astype(self._dtype)})[0]
            except Exception as exc:  # onnxruntime raises its own exception types
                raise TeacherError(f"{self.path}: onnxruntime failed ({' '.join(str(exc).split())[:200]})") from None
            outs.append(torch.from_numpy(np.asarray(out, dtype=np.float32))[:n])
        return torch.cat(outs)

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        out = self._run((images.detach().cpu().float() - mean) / std)
        if not bool(torch.isfinite(out).all()):
            raise TeacherError(f"{self.path}: the model returned non-finite outputs")
        if self.output == "logits":
            return F.softmax(out / self.temperature, dim=1)
        if not _rows_are_probs(out):
            raise TeacherError(f"{self.path}: outputs taken as probabilities do not sum to 1 (use output 'logits')")
        return out

    def describe(self) -> dict[str, Any]:
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {
            "kind": "onnx",
            "source": str(self.path),
            "sha256": self._sha256,
            "num_classes": self.num_classes,
            "resolution": self.resolution,
            "mean": list(self.mean),
            "std": list(self.std),
            "output": self.output,
            "temperature": self.temperature,
        }


def _rows_are_probs(out: torch.Tensor) -> bool:
    return bool((out >= 0).all()) and float((out.sum(1) - 1).abs().max()) <= PROBS_TOLERANCE


def _session(path: Path, threads: int | None, device: str | None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = threads
    providers = ["CPUExecutionProvider"]
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device is not None and device.startswith("cuda") and not has_cuda:
        raise TeacherError(f"{path}: this onnxruntime has no CUDA provider (use the cpu device)")
    if has_cuda and (device is None or device.startswith("cuda")):
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as exc:  # onnxruntime's InvalidProtobuf, InvalidGraph, Fail, …
        raise TeacherError(f"{path}: not a loadable ONNX model ({' '.join(str(exc).split())[:200]})") from None


def _input_info(sess: Any, path: Path, resolution: int | None) -> tuple[str, int | None, int, Any]:
    """(input name, fixed batch or None, image side, numpy dtype) of a one-input NCHW image model."""
    ins = sess.get_inputs()
    if len(ins) != 1:
        raise TeacherError(f"{path}: a teacher takes one input (this model takes {len(ins)})")
    shape, kind = list(ins[0].shape), ins[0].type
    dtypes = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
    if kind not in dtypes:
        raise TeacherError(f"{path}: input type {kind}; a teacher takes float32 or float16 images")
    if len(shape) != 4 or isinstance(shape[1], int) and shape[1] != 3:
        raise TeacherError(f"{path}: input shape {shape}; a teacher takes N x 3 x H x W images")
    h, w = shape[2], shape[3]
    if isinstance(h, int) and isinstance(w, int):
        if h != w:
            raise TeacherError(f"{path}: input is {h}x{w}; a teacher takes square images")
        side = h
    elif resolution is None:
        raise TeacherError(f"{path}: the model's input size is dynamic; give the resolution to run it at")
    else:
        side = resolution
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return ins[0].name, batch, int(side), dtypes[kind]
