"""TFLite (LiteRT) export, FP32 or INT8, with a LiteRT parity check against torch.

Needs the optional ``tflite`` extra (``pip install "mnv4-nas[tflite]"``: litert-torch, ai-edge-quantizer,
ai-edge-litert); without it every function here is a one-line error naming the extra.

Models take NHWC input (``to_channel_last_io``) and 4-D outputs are NHWC too, as a TFLite graph runs
internally, so that a single layer timed alone pays no layout transposes that a model would not.
INT8 is full-integer static quantization (``ai-edge-quantizer``'s ``static_wi8_ai8``: INT8 weights
and activations, INT8 input and output), calibrated on representative inputs — for a whole model,
images of a data set (the built-in one by default).
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError, RuntimeCheckError
from nas.spec import ArchSpec

EXTRA_HINT = 'pip install -c constraints.txt -e ".[tflite]"'
#: FP32 parity bound (max |LiteRT − torch| on the logits of a random input)
FP32_ATOL = 1e-3
#: INT8 parity bound: relative L2 error of the dequantized logits against torch's
INT8_REL_TOL = 0.75
#: images a whole-model INT8 export is calibrated on
N_CALIB = 32


def require_litert() -> None:
    """A one-line error naming the extra when litert-torch, ai-edge-quantizer or ai-edge-litert is missing."""
    import importlib.util

    missing = [
        m for m in ("litert_torch", "ai_edge_quantizer", "ai_edge_litert") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise NasError(
            f"TFLite export and LiteRT timing need the tflite extra ({', '.join(missing)} missing): {EXTRA_HINT}"
        )


@contextmanager
def quiet() -> Iterator[None]:
    """Silence the converter and quantizer, whose C++ and Python layers print progress to the process's
    stdout and stderr (file descriptors 1 and 2, not only ``sys.stdout``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def interpreter(path: str | Path, threads: int = 1) -> Any:
    """A LiteRT interpreter (XNNPACK delegate, the default CPU path) with ``threads`` threads, tensors allocated."""
    require_litert()
    with quiet():
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=str(path), num_threads=threads)
        it.allocate_tensors()
    return it


def _to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def quantize_input(detail: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """``x`` (float) as the interpreter's input tensor expects it (quantized for an INT8 input)."""
    dtype = detail["dtype"]
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def dequantize_output(detail: dict[str, Any], y: np.ndarray) -> np.ndarray:
    """An output tensor as float (dequantized when INT8)."""
    if detail["dtype"] == np.float32:
        return y.astype(np.float32)
    scale, zero = detail["quantization"]
    return (y.astype(np.float32) - zero) * scale


def run(it: Any, x_nchw: np.ndarray) -> np.ndarray:
    """One inference on an NCHW float input; the output as float, NCHW when 4-D."""
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], quantize_input(inp, _to_nhwc(x_nchw)))
    it.invoke()
    y = dequantize_output(out, it.get_tensor(out["index"]))
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)) if y.ndim == 4 else y


@dataclass(frozen=True)
class TfliteExport:
    """Result of :func:`export_tflite` / :func:`export_module_tflite`."""

    path: Path
    int8: bool
    input_shape: tuple[int, ...]  # NCHW, as the torch model takes it (the file takes NHWC)
    max_abs_diff: float | None  # None when the check was skipped
    rel_error: float | None  # ||LiteRT − torch|| / ||torch|| on the check inputs
    calib: str = ""  # what an INT8 model was calibrated on


def _convert(module: Any, input_shape: Sequence[int], float_path: Path) -> None:
    import litert_torch
    import torch

    x = torch.zeros(tuple(input_shape))
    with torch.no_grad():
        four_d = module(x).dim() == 4
    wrapped = litert_torch.to_channel_last_io(module, args=[0], outputs=[0] if four_d else []).eval()
    nhwc = torch.zeros(input_shape[0], input_shape[2], input_shape[3], input_shape[1])
    litert_torch.convert(wrapped, (nhwc,)).export(str(float_path))


def _quantize(float_path: Path, path: Path, calib: Sequence[np.ndarray]) -> None:
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    it = Interpreter(model_path=str(float_path))
    (name,) = list(it.get_signature_list())[:1]
    runner = it.get_signature_runner(name)
    (inp,) = list(runner.get_input_details())[:1]
    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    data = {name: [{inp: _to_nhwc(x).astype(np.float32)} for x in calib]}
    qt.quantize(qt.calibrate(data)).export_model(str(path), overwrite=True)


def export_module_tflite(
    module: Any,
    input_shape: Sequence[int],
    path: str | Path,
    *,
    int8: bool = False,
    calib: Sequence[np.ndarray] | None = None,
    check: bool = True,
    seed: int = 0,
) -> TfliteExport:
    """Convert any module taking one NCHW tensor to ``path`` (written atomically): FP32, or INT8 calibrated
    on ``calib`` (NCHW float arrays; 4 standard-normal inputs when None). With ``check``, LiteRT's output on
    a check input is compared with torch's (FP32: max abs diff <= :data:`FP32_ATOL`; INT8: relative error
    <= :data:`INT8_REL_TOL`), a :class:`RuntimeCheckError` otherwise."""
    import torch

    require_litert()
    p = Path(path)
    shape = tuple(int(v) for v in input_shape)
    module = module.eval()
    rng = np.random.default_rng(seed)
    if calib is None:
        calib = [rng.standard_normal(shape, dtype=np.float32) for _ in range(4)]
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp_float = p.with_name(f".{p.name}.{os.getpid()}.float.tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with quiet():
            _convert(module, shape, tmp_float if int8 else tmp)
            if int8:
                _quantize(tmp_float, tmp, calib)
        os.replace(tmp, p)
    except OSError as exc:
        raise NasError(
            f"cannot write {p} ({exc.strerror or type(exc).__name__}); give a writable output path"
        ) from None
    finally:
        for t in (tmp, tmp_float):
            t.unlink(missing_ok=True)
    if not check:
        return TfliteExport(p, int8, shape, None, None)
    xs = list(calib[:4]) if int8 else [rng.standard_normal(shape, dtype=np.float32)]
    it = interpreter(p, threads=min(2, os.cpu_count() or 1))
    diff, num, den = 0.0, 0.0, 0.0
    for x in xs:
        with torch.no_grad():
            ref = module(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()
        got = run(it, np.asarray(x, dtype=np.float32))
        if got.shape != ref.shape:
            raise RuntimeCheckError(f"TFLite check failed for {p}: output shape {got.shape} != torch {ref.shape}")
        diff = max(diff, float(np.max(np.abs(got - ref))))
        num += float(np.sum((got - ref) ** 2))
        den += float(np.sum(ref**2))
    rel = (num / den) ** 0.5 if den > 0 else 0.0
    if int8 and not rel <= INT8_REL_TOL:
        raise RuntimeCheckError(
            f"TFLite INT8 check failed for {p}: relative error of LiteRT vs torch {rel:.3f} > {INT8_REL_TOL:g}"
        )
    if not int8 and not diff <= FP32_ATOL:
        raise RuntimeCheckError(f"TFLite check failed for {p}: max |LiteRT - torch| = {diff:.3g} > {FP32_ATOL:g}")
    return TfliteExport(p, int8, shape, diff, rel)


def calibration_images(data: str, resolution: int, n: int = N_CALIB, seed: int = 0) -> list[np.ndarray]:
    """``n`` images of data set ``data`` (``builtin[:N]``, an ``.npz`` file or an image folder) at
    ``resolution``, normalised as training normalises them, each a 1×3×R×R float array."""
    from nas.data import load_data

    ds = load_data(data, resolution, seed=seed)
    x = ds.train_x
    idx = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(int))
    imgs = ds.normalize(x[idx]).numpy()
    return [imgs[i : i + 1] for i in range(len(imgs))]


def export_tflite(
    arch: ArchSpec,
    path: str | Path,
    *,
    int8: bool = False,
    calib: str = "builtin:4",
    check: bool = True,
    seed: int = 0,
) -> TfliteExport:
    """Export the model of ``arch`` (built with ``seed``, BatchNorm statistics estimated on ``calib``'s
    images) to a ``.tflite`` file; INT8 is calibrated on those images. Checked against torch (see
    :func:`export_module_tflite`)."""
    import torch

    from nas.model import build_model, recalibrate_bn

    require_litert()
    images = calibration_images(calib, arch.resolution, seed=seed)
    batches = [torch.from_numpy(np.concatenate(images[i : i + 8])) for i in range(0, len(images), 8)]
    model = recalibrate_bn(build_model(arch, seed=seed), batches)
    shape = (1, 3, arch.resolution, arch.resolution)
    res = export_module_tflite(model, shape, path, int8=int8, calib=images if int8 else None, check=check, seed=seed)
    return TfliteExport(res.path, res.int8, res.input_shape, res.max_abs_diff, res.rel_error, calib)


__all__ = [
    "EXTRA_HINT",
    "FP32_ATOL",
    "INT8_REL_TOL",
    "TfliteExport",
    "calibration_images",
    "dequantize_output",
    "export_module_tflite",
    "export_tflite",
    "interpreter",
    "quantize_input",
    "quiet",
    "require_litert",
    "run",
]
