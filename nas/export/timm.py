"""Export a spec as timm arch-def lines plus the model-level keyword arguments timm needs.

timm keeps some choices at model level (default activation, layer-scale init, stem width, head
widths); the exporter derives them from the spec and refuses specs timm cannot express (e.g. layer
scale on only some blocks), naming the offending block.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.errors import SpecError
from nas.spec import ArchSpec, BlockSpec, MHSASpec, MQASpec, UIBSpec, format_block

_TIMM_ACT = {"relu": "nre", "relu6": "nr6"}
_TIMM_ACT_LAYER = {"relu": "relu", "relu6": "relu6", "gelu": "gelu"}


@dataclass(frozen=True)
class TimmArch:
    """timm's view of a spec: arch-def stages, the model class and its keyword arguments."""

    stages: tuple[tuple[str, ...], ...]
    model_class: str  # "MobileNetV3" (head conv after pooling) or "EfficientNet" (head conv before pooling)
    kwargs: dict[str, object]
    resolution: int = 224  # input size of the snippet's forward pass
    params: int | None = None  # parameter count mnv4-nas builds (the snippet checks timm's against it)

    def lines(self, title: str | None = None) -> str:
        """Text form: a comment header with a Python snippet that builds the model in timm and runs a
        forward pass (lines ``#| …``), then one block per line and a blank line between stages."""
        head = [
            f"# timm arch-def{' for ' + title if title else ''}: one block per line, stages separated by blank lines",
            f"# Build it in timm (>= 1.0) and run it once: {SNIPPET_COMMAND}",
            *(SNIPPET_PREFIX + line for line in self.snippet().splitlines()),
        ]
        body = "\n\n".join("\n".join(stage) for stage in self.stages)
        return "\n".join(head) + "\n" + body + "\n"

    def snippet(self) -> str:
        """Python that builds this model with timm's own builder (``decode_arch_def`` + ``MobileNetV3``
        or ``EfficientNet``, as timm's ``_gen_mobilenet_v4`` does) and checks one forward pass."""
        module = "mobilenetv3" if self.model_class == "MobileNetV3" else "efficientnet"
        kw = {k: v for k, v in self.kwargs.items() if k != "act_layer"}
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        stages = "\n".join(f"    {list(stage)!r}," for stage in self.stages)
        res = self.resolution
        return "\n".join(
            [
                "import torch",
                "from timm.layers import get_act_layer",
                "from timm.models._efficientnet_builder import decode_arch_def",
                f"from timm.models.{module} import {self.model_class}",
                "stages = [",
                stages,
                "]",
                f"model = {self.model_class}(",
                f"    decode_arch_def(stages), round_chs_fn=lambda c: c, act_layer=get_act_layer({self.kwargs['act_layer']!r}),",
                f"    {args},",
                ").eval()",
                "with torch.no_grad():",
                f"    logits = model(torch.randn(1, 3, {res}, {res}))",
                f"assert logits.shape == (1, {self.kwargs['num_classes']}), logits.shape",
                "n_params = sum(p.numel() for p in model.parameters())",
                *(
                    [f"assert n_params == {self.params}, f'{{n_params}} parameters; mnv4-nas builds {self.params}'"]
                    if self.params is not None
                    else []
                ),
                "print(n_params, 'parameters; logits', tuple(logits.shape))",
            ]
        )


#: how snippet lines start in the text form, and how to run them
SNIPPET_PREFIX = "#| "
SNIPPET_COMMAND = "sed -n 's/^#| //p' THIS_FILE | python"


def read_timm_snippet(text: str) -> str:
    """The Python snippet of :meth:`TimmArch.lines` text (its ``#| `` lines)."""
    return "\n".join(
        line[len(SNIPPET_PREFIX) :] if line.startswith(SNIPPET_PREFIX) else ""
        for line in text.splitlines()
        if line.startswith(SNIPPET_PREFIX.rstrip())
    )


def _timm_block(b: BlockSpec, model_act: str) -> str:
    toks = format_block(b).split("_")
    # Drop our extension tokens; timm sets these at model level.
    toks = [t for t in toks if t not in ("ls", "nge", "nr6", "nre")]
    if isinstance(b, UIBSpec) and b.stride == 2 and b.stride_on == "start" and b.mid_dw_kernel is not None:
        raise SpecError(f"timm export: {format_block(b)!r} puts the stride on the start DW; timm cannot express that")
    if "sa" in toks:
        toks.remove("sa")
    if isinstance(b, MQASpec) and (b.v_dim != b.key_dim or b.query_stride != 1):
        raise SpecError(
            f"timm export: {format_block(b)!r}: timm's mqa letters need value_dim == key_dim and query_stride 1"
        )
    if isinstance(b, MHSASpec) and (b.kv_stride != 1 or b.key_dim * b.heads != b.out_channels or b.v_dim != b.key_dim):
        raise SpecError(
            f"timm export: {format_block(b)!r}: timm's mha is plain MHSA (kv_stride 1, key_dim = value_dim = channels/heads)"
        )
    act = getattr(b, "activation", None)
    if act is not None and act != model_act:
        if act not in _TIMM_ACT:
            raise SpecError(
                f"timm export: {format_block(b)!r} uses {act} but the model default is {model_act}; timm has no per-block {act} letter"
            )
        toks.append(_TIMM_ACT[act])
    return "_".join(toks)


def to_timm(arch: ArchSpec) -> TimmArch:
    """timm arch-def stages (a new stage at every stride-2 block) and model kwargs for ``arch``."""
    model_act = arch.stem.activation
    if arch.head.activation != model_act:
        raise SpecError(
            "timm export: the head activation must equal the stem activation (timm has one model-level act)"
        )
    scaled = [b for b in arch.blocks if isinstance(b, (UIBSpec, MQASpec, MHSASpec))]
    ls = {b.layer_scale for b in scaled}
    if len(ls) > 1:
        odd = next(b for b in scaled if b.layer_scale != scaled[0].layer_scale)
        raise SpecError(
            f"timm export: layer scale must be on all uir/mqa/mha blocks or none ({format_block(odd)!r} differs)"
        )
    stages: list[list[str]] = []
    for b in arch.blocks:
        line = _timm_block(b, model_act)
        if not stages or b.stride == 2:
            stages.append([])
        stages[-1].append(line)
    kwargs: dict[str, object] = {
        "stem_size": arch.stem.out_channels,
        "fix_stem": True,
        "num_classes": arch.num_classes,
        "act_layer": _TIMM_ACT_LAYER[model_act],
    }
    if arch.stem.kernel != 3 or arch.stem.stride != 2:
        raise SpecError("timm export: timm's stem is a 3x3 stride-2 conv")
    if ls == {True}:
        kwargs["layer_scale_init_value"] = 1e-5
    head = arch.head
    if head.hidden_channels:
        if head.conv_channels:
            stages.append([f"cn_r1_k1_s1_c{head.conv_channels}"])
        kwargs.update(num_features=head.hidden_channels, head_norm=True, head_bias=False)
        model_class = "MobileNetV3"
    else:
        kwargs["num_features"] = head.conv_channels
        model_class = "EfficientNet"
    from nas.cost import count_params

    return TimmArch(tuple(tuple(s) for s in stages), model_class, kwargs, arch.resolution, count_params(arch))


def timm_lines(arch: ArchSpec, title: str | None = None) -> str:
    """The text written by ``mnv4-nas export --format timm``."""
    return to_timm(arch).lines(title)


def read_timm_lines(text: str) -> list[list[str]]:
    """Parse the text of :func:`timm_lines` back into arch-def stages (comments, the ``#|`` snippet and
    blank lines skipped)."""
    stages: list[list[str]] = [[]]
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if stages[-1]:
                stages.append([])
            continue
        stages[-1].append(line)
    return [s for s in stages if s]
