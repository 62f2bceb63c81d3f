"""``mnv4-nas space list|show|sample``: inspect and sample search spaces."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
import typer
from rich.table import Table

from nas.cli._common import console, get_config, print_json
from nas.cost import count_macs, count_params
from nas.errors import SpecError
from nas.inputs import check_seed
from nas.space import (
    SearchSpace,
    coarse_space,
    contains,
    decisions,
    distinct_blocks,
    encode,
    fix_coarse,
    list_spaces,
    load_space,
    log10_size,
    sample,
    size,
)
from nas.units import format_count, format_macs
from nas.zoo import get_spec, resolve

app = typer.Typer(help="Inspect and sample search spaces (shipped names or your own TOML files).", no_args_is_help=True)


def _reference_status(space: SearchSpace) -> tuple[str, bool | None]:
    if not space.reference:
        return "-", None
    try:
        encode(space, get_spec(space.reference))
    except SpecError as exc:
        return f"{space.reference} (NOT a member: {exc})", False
    return f"{space.reference} (member)", True


@app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the shipped search spaces."""
    rows: list[dict[str, Any]] = []  # JSON records
    for name in list_spaces():
        sp = load_space(name)
        rows.append(
            {
                "name": name,
                "resolution": sp.resolution,
                "reference": sp.reference,
                "searchable_stages": sum(s.constant_blocks is None for s in sp.stages),
                "log10_size": round(log10_size(sp), 2),
                "description": sp.description,
            }
        )
    if json_out:
        print_json(rows)
        return
    table = Table(title="search spaces (any space file path works too)")
    for col in ("name", "res", "reference", "stages", "log10 size", "description"):
        table.add_column(col, no_wrap=col != "description")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["resolution"]),
            r["reference"] or "-",
            str(r["searchable_stages"]),
            f"{r['log10_size']:.1f}",
            r["description"],
        )
    console.print(table)


def _stage_rows(space: SearchSpace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    h = -(-space.resolution // space.stem.stride)
    for i, st in enumerate(space.stages):
        rows.append({"stage": i, "kind": st.kind, "input": f"{h}x{h}", **st.describe()})
        for s in st.strides():
            h = -(-h // s)
    return rows


@app.command("show")
def show(
    name_or_path: str = typer.Argument(..., metavar="NAME_OR_PATH", help="Shipped space name or a space .toml file."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stages, choices, size (exact and log10) and reference model of a space."""
    sp = load_space(name_or_path)
    ref_text, _ = _reference_status(sp)
    coarse = coarse_space(sp)
    fine_size = None
    if sp.reference:
        try:
            fine_size = size(fix_coarse(sp, get_spec(sp.reference)))
        except SpecError:
            fine_size = None
    info: dict[str, Any] = {
        "name": sp.name,
        "source": sp.source,
        "description": sp.description,
        "resolution": sp.resolution,
        "num_classes": sp.num_classes,
        "activation": sp.activation,
        "layer_scale": sp.layer_scale,
        "reference": sp.reference,
        "reference_member": ref_text,
        "stages": _stage_rows(sp),
        "coarse_block": sp.coarse_block.label,
        "fine": {
            "start_dw": [k or 0 for k in sp.start_dw],
            "mid_dw": [k or 0 for k in sp.mid_dw],
            "expansion": [int(e) if float(e).is_integer() else e for e in sp.expansions],
        },
        "size": str(size(sp)),
        "log10_size": round(log10_size(sp), 3),
        "coarse_size": size(coarse),
        "fine_size_around_reference": None if fine_size is None else str(fine_size),
        "decisions": len(decisions(sp)),
        "distinct_blocks": len(distinct_blocks(sp)),
    }
    if json_out:
        print_json(info)
        return
    console.print(f"[bold]{sp.name}[/bold] — {sp.description}")
    console.print(f"source: {sp.source}")
    console.print(
        f"resolution {sp.resolution}, {sp.num_classes} classes, activation {sp.activation}, "
        f"layer scale {'on' if sp.layer_scale else 'off'}; reference: {ref_text}"
    )
    table = Table(title="stages (stem and head fixed)")
    for col in ("#", "kind", "input", "stride", "channels", "depth", "attention / block"):
        table.add_column(col, no_wrap=True)
    for r in info["stages"]:
        chans = r["channels"] if isinstance(r["channels"], str) else " ".join(map(str, r["channels"]))
        depth = str(r["depth"]) if isinstance(r["depth"], int) else " ".join(map(str, r["depth"]))
        extra = r.get("attention", "-")
        if r["kind"] == "fixed":
            extra = " ".join(r["blocks"])
        table.add_row(str(r["stage"]), str(r["kind"]), str(r["input"]), str(r["stride"]), chans, depth, str(extra))
    console.print(table)
    fine = info["fine"]
    console.print(
        f"coarse stage block: {sp.coarse_block.label} (IB 3x3, expansion 4 in the paper's recipe); "
        f"fine stage per block: start DW {fine['start_dw']} x middle DW {fine['mid_dw']} x expansion "
        f"{fine['expansion']} (0 = absent; a stride-2 block keeps a DW)"
    )
    console.print(f"size: {info['size']} architectures (10^{info['log10_size']:.2f})")
    console.print(
        f"coarse stage: {format_count(int(info['coarse_size']))} width/depth combinations; "
        + (f"fine stage around the reference: {int(fine_size):.3e}; " if fine_size is not None else "")
        + f"{info['decisions']} decisions; {info['distinct_blocks']} distinct blocks for latency tables"
    )


class Stage(StrEnum):
    """Which stage to sample from."""

    joint = "joint"
    coarse = "coarse"
    fine = "fine"


@app.command("sample")
def sample_(
    ctx: typer.Context,
    name_or_path: str = typer.Argument(..., metavar="NAME_OR_PATH", help="Shipped space name or a space .toml file."),
    n: int = typer.Option(5, "--n", min=1, max=100000, help="Number of architectures."),
    seed: int | None = typer.Option(None, "--seed", help="Random seed (default: project.seed from nas.toml)."),
    stage: Stage = typer.Option(
        Stage.joint, "--stage", help="joint (one-stage), coarse or fine.", case_sensitive=False
    ),
    coarse: str | None = typer.Option(
        None, "--coarse", metavar="SPEC_OR_NAME", help="Fine stage: the coarse result to fix (default: the reference)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list of {arch, params, macs}."),
) -> None:
    """Sample architectures; prints canonical arch strings with params and MACs."""
    sp = load_space(name_or_path)
    rng = np.random.default_rng(get_config(ctx).project.seed if seed is None else check_seed(seed))
    note = ""
    if stage is Stage.coarse:
        target = coarse_space(sp)
    elif stage is Stage.fine:
        if coarse is not None:
            base, base_name = resolve(coarse)
        elif sp.reference:
            base, base_name = get_spec(sp.reference), sp.reference
        else:
            base, base_name = sample(coarse_space(sp), rng), "a random coarse sample"
        if not contains(sp, base) and not contains(coarse_space(sp), base):
            raise SpecError(f"--coarse {base_name}: its widths/depths are not choices of {sp.name}")
        target = fix_coarse(sp, base)
        note = f"fine stage around the widths and depths of {base_name}"
    else:
        target = sp
    archs = [sample(target, rng) for _ in range(n)]
    rows: list[dict[str, Any]] = [{"arch": a.arch, "params": count_params(a), "macs": count_macs(a)} for a in archs]
    if json_out:
        print_json(rows)
        return
    if note:
        console.print(note)
    for r in rows:
        # Arch strings are long: never wrap them, so each line stays copy-pasteable.
        typer.echo(f"{format_count(int(r['params'])):>12} params  {format_macs(int(r['macs'])):>9} MACs  {r['arch']}")
