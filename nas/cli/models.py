"""``mnv4-nas zoo``, ``show`` and ``export``: reference models, block tables, spec/ONNX export."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Any

import typer
from rich.table import Table

from nas._io import write_text_atomic
from nas.cli._common import UsageError, console, print_json
from nas.cost import count_macs, count_params, layer_costs
from nas.inputs import check_name, check_output_file
from nas.spec import ArchSpec, BlockSpec, block_label, to_json, to_toml
from nas.units import format_count, format_macs
from nas.zoo import resolve


def zoo(json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the reference models (MobileNetV4 zoo and the MobileNet V1/V2 calibration models)."""
    from nas.zoo import ZOO

    rows: list[dict[str, Any]] = []  # JSON records
    for name, entry in ZOO.items():
        spec = entry.spec()
        rows.append(
            {
                "name": name,
                "resolution": spec.resolution,
                "params": count_params(spec),
                "macs": count_macs(spec),
                "blocks": len(spec.blocks),
                "description": entry.description,
                "arch": spec.arch,
            }
        )
    if json_out:
        print_json(rows)
        return
    table = Table(title="mnv4-nas reference models (1000 classes)")
    for col, justify in (
        ("name", "left"),
        ("res", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("blocks", "right"),
        ("description", "left"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "description")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r["name"],
            str(r["resolution"]),
            format_count(r["params"]),
            format_macs(r["macs"]),
            str(r["blocks"]),
            r["description"],
        )
    console.print(table)


def _describe(spec: BlockSpec) -> tuple[str, str, str, str]:
    """(block label, kernels, expansion, extra) for the show table."""
    return block_label(spec)


def _show_rows(arch: ArchSpec) -> list[dict[str, Any]]:
    costs = layer_costs(arch)
    rows: list[dict[str, Any]] = []  # JSON records
    for layer, cost in zip(arch.layers, costs):
        label, kernels, exp, extra = _describe(layer.spec)
        rows.append(
            {
                "index": layer.index,
                "input": str(layer.in_shape),
                "block": label,
                "kernels": kernels,
                "expansion": exp,
                "out_channels": layer.out_shape.c,
                "stride": layer.spec.stride,
                "params": cost.params,
                "macs": cost.macs,
                "extra": extra,
                "dsl": cost.name,
            }
        )
    head = costs[-1]
    rows.append(
        {
            "index": head.index,
            "input": str(head.in_shape),
            "block": "Head",
            "kernels": "-",
            "expansion": "-",
            "out_channels": arch.num_classes,
            "stride": 1,
            "params": head.params,
            "macs": head.macs,
            "extra": f"{arch.head.conv_channels or '-'} → pool → {arch.head.hidden_channels or '-'} → {arch.num_classes}",
            "dsl": head.name,
        }
    )
    return rows


def show(
    spec_or_name: str = typer.Argument(
        ..., metavar="SPEC_OR_NAME", help="Zoo model name, spec file (.json/.toml) or arch string."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """Block-by-block table of an architecture: input shape, block, kernels, expansion, width, stride, params, MACs."""
    arch, name = resolve(spec_or_name)
    rows = _show_rows(arch)
    if json_out:
        print_json(
            {"name": name, "arch": arch.arch, "params": count_params(arch), "macs": count_macs(arch), "layers": rows}
        )
        return
    table = Table(
        title=f"{name} — {arch.resolution}px, {format_count(count_params(arch))} params, {format_macs(count_macs(arch))} MACs"
    )
    cols = [
        ("#", "right"),
        ("input", "right"),
        ("block", "left"),
        ("k1/k2", "center"),
        ("exp", "right"),
        ("out", "right"),
        ("s", "right"),
        ("params", "right"),
        ("MACs", "right"),
        ("", "left"),
    ]
    for col, justify in cols:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            str(r["index"]),
            str(r["input"]),
            str(r["block"]),
            str(r["kernels"]),
            str(r["expansion"]),
            str(r["out_channels"]),
            str(r["stride"]),
            format_count(int(r["params"])),
            format_macs(int(r["macs"])),
            str(r["extra"]),
        )
    console.print(table)


def _export_tflite(arch: ArchSpec, name: str, output: str | None, int8: bool, calib: str, check: bool) -> None:
    """``export --format tflite``: parse → library call → print."""
    from nas.export.tflite import export_tflite, require_litert

    if output in (None, "-"):
        raise UsageError("--output PATH is required for --format tflite (binary output cannot go to stdout)")
    require_litert()
    check_name(calib, "--calib")
    check_output_file(output, "--output")
    kind = "INT8" if int8 else "FP32"
    with console.status(f"exporting {name} to TFLite ({kind}) and checking it in LiteRT…"):
        res = export_tflite(arch, output, int8=int8, calib=calib, check=check)
    if res.max_abs_diff is None:
        diff = "not checked"
    else:
        diff = f"max |LiteRT - torch| = {res.max_abs_diff:.2e}, relative error {res.rel_error:.3f}"
    how = f", calibrated on {res.calib}" if int8 else ""
    console.print(f"wrote {res.path} ({kind}{how}; input NHWC 1x{arch.resolution}x{arch.resolution}x3; {diff})")


class ExportFormat(StrEnum):
    """Export formats."""

    json = "json"
    toml = "toml"
    timm = "timm"
    onnx = "onnx"
    tflite = "tflite"


def export(
    spec_or_name: str = typer.Argument(..., metavar="SPEC_OR_NAME", help="Zoo model name, spec file or arch string."),
    fmt: ExportFormat = typer.Option(..., "--format", "-f", help="Output format.", case_sensitive=False),
    output: str | None = typer.Option(
        None, "--output", "-o", help="Output path; '-' or omitted = stdout (required for onnx)."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset (17 up to what the installed torch exporter supports)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="ONNX: make the batch dimension dynamic."),
    check: bool = typer.Option(
        True, "--check/--no-check", help="ONNX/TFLite: compare the runtime's output with torch's."
    ),
    int8: bool = typer.Option(False, "--int8", help="TFLite: full-integer INT8 (weights and activations)."),
    calib: str = typer.Option(
        "builtin:4",
        "--calib",
        help="TFLite: data whose images calibrate INT8 and BatchNorm (builtin[:N], .npz, folder).",
    ),
) -> None:
    """Export a spec as JSON, TOML, timm arch-def lines, an ONNX model checked in onnxruntime, or a
    TFLite model (FP32 or INT8) checked in LiteRT."""
    arch, name = resolve(spec_or_name)
    if fmt is ExportFormat.tflite:
        _export_tflite(arch, name, output, int8, calib, check)
        return
    if int8:
        raise UsageError("--int8 applies to --format tflite only")
    if fmt is ExportFormat.onnx:
        if output in (None, "-"):
            raise UsageError("--output PATH is required for --format onnx (binary output cannot go to stdout)")
        from nas.export.onnx import check_opset, export_onnx

        check_opset(opset)
        check_output_file(output, "--output")
        with console.status(f"exporting {name} to ONNX and checking it in onnxruntime…"):
            res = export_onnx(arch, output, opset=opset, dynamic_batch=dynamic_batch, check=check)
        diff = "not checked" if res.max_abs_diff is None else f"max |ort - torch| = {res.max_abs_diff:.2e}"
        console.print(f"wrote {res.path} (opset {res.opset}, input {'x'.join(map(str, res.input_shape))}; {diff})")
        return
    if fmt is ExportFormat.json:
        text = to_json(arch, name)
    elif fmt is ExportFormat.toml:
        text = to_toml(arch, name)
    else:
        from nas.export.timm import timm_lines

        text = timm_lines(arch, name)
    if output in (None, "-"):
        sys.stdout.write(text)
        return
    p = check_output_file(output, "--output")
    write_text_atomic(p, text, "give --output a writable path")
    console.print(f"wrote {p}")
