"""A space as plain data: the TOML schema's dict (what checkpoints and manifests store) and back."""

from __future__ import annotations

from typing import Any

from nas.space._schema import SearchSpace, space_from_dict
from nas.spec import format_block, format_head


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as the TOML schema's dict (``space_from_dict`` reads it back to an equal space)."""
    out: dict[str, Any] = {
        "name": space.name,
        "description": space.description,
        "resolution": space.resolution,
        "num_classes": space.num_classes,
        "activation": space.activation,
        "layer_scale": space.layer_scale,
        "stem": format_block(space.stem),
        "head": format_head(space.head, space.num_classes),
        "coarse": {"block": space.coarse_block.label},
        "fine": {
            "start_dw": [k or 0 for k in space.start_dw],
            "mid_dw": [k or 0 for k in space.mid_dw],
            "expansion": list(space.expansions),
        },
        "stages": [st.to_dict() for st in space.stages],
    }
    if space.reference:
        out["reference"] = space.reference
    return out


def space_meta(space: SearchSpace) -> dict[str, Any]:
    """JSON-able description of a space in its phase."""
    return {
        "definition": space_to_dict(space),
        "source": space.source,
        "phase": space.phase,
        "fixed_widths": None if space.fixed_widths is None else [list(w) if w else None for w in space.fixed_widths],
    }


def space_from_meta(meta: dict[str, Any]) -> SearchSpace:
    """Inverse of :func:`space_meta` (``meta`` checked by ``nas.supernet``'s ``check_meta`` or
    ``read_manifest`` first)."""
    sp = space_from_dict(meta["definition"], meta.get("source", "<checkpoint>"))
    fw = meta.get("fixed_widths")
    if meta.get("phase", "joint") != "joint" or fw is not None:
        sp = sp.with_phase(
            meta.get("phase", "joint"), None if fw is None else tuple(tuple(w) if w else None for w in fw)
        )
    return sp
