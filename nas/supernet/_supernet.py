"""The weight-sharing supernet of a search space.

One set of weights covers every member of a space (any phase). Each *position* of the space — the
stem, every fixed block, every FusedIB/UIB block index of a stage, every Mobile MQA slot of a stage,
the head — owns one storage module: the normal :mod:`nas.model` module of the largest block that can
sit there (widest input and output, largest expansion, both depthwise convs at their largest kernel).
A member's block is computed by the normal module's own ``forward`` on *slices* of that storage
(``torch.func.functional_call`` on a parameter-free template), so

* the pointwise expand/project weights are shared by every UIB variant and expansion (the first
  ``make_divisible(in_c * e)`` rows of the largest expansion);
* a 3×3 depthwise kernel is the centre of the 5×5 one; an absent depthwise conv is skipped; with
  ``kernel_transform`` (Once-for-All's kernel transformation) the 3×3 kernel is that centre times a
  learned 9×9 matrix, one per depthwise conv and kernel size, shared by its channels and initialised
  to the identity, so the small kernel need not be exactly the big kernel's centre;
* a narrower stage uses the first channels of every tensor (channel masking by slicing);
* an MQA slot's weights are used only when the slot is switched on;

and :meth:`Supernet.extract` copies exactly the same slices into a model built by
:func:`nas.model.build_model`, so the extracted network computes what the supernet computes.

The active subnet is an argument of :meth:`Supernet.forward`; the module holds no "current
architecture" state, so one supernet can serve several subnets in one step (sandwich rule).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from nas.errors import NasError, SpecError
from nas.model import build_block, init_weights
from nas.model.blocks import Head
from nas.space import Decision, Geometry, SearchSpace, UIBChoice, active_mask, canonical, decisions, decode, widths_of
from nas.spec import ArchSpec, BlockSpec, Shape, block_key
from nas.spec.blocks import conv_out

#: Layouts (storage key per block) of this many recently used architectures are kept.
LAYOUT_CACHE = 4096

# ----------------------------------------------------------------------------------------------
# spaces at the training resolution
# ----------------------------------------------------------------------------------------------


def stride2_count(space: SearchSpace) -> int:
    """Number of stride-2 layers every member of ``space`` has."""
    return int(space.stem.stride == 2) + sum(s == 2 for st in space.stages for s in st.strides())


def training_space(space: SearchSpace, resolution: int, num_classes: int) -> SearchSpace:
    """``space`` at another input resolution and class count (what the supernet trains on)."""
    need = 2 ** stride2_count(space)
    if resolution < need:
        raise NasError(
            f"resolution {resolution} is too small for space {space.name}: its {stride2_count(space)} stride-2 layers "
            f"need at least {need} px"
        )
    if num_classes < 2:
        raise NasError(f"a classifier needs at least 2 classes (got {num_classes})")
    return dataclasses.replace(space, resolution=resolution, num_classes=num_classes)


def _uib_size(c: UIBChoice) -> tuple[float, int]:
    return (c.expansion, (c.start or 0) ** 2 + (c.mid or 0) ** 2)


def extreme_vector(space: SearchSpace, largest: bool) -> np.ndarray:
    """Canonical encoding of the largest (every option at its maximum: widest, deepest, both DWs at
    the largest kernel, largest expansion, every MQA slot on) or the smallest member of ``space``."""
    pick = max if largest else min
    vec = []
    for d in decisions(space):
        if d.kind in ("channels", "depth"):
            vec.append(d.choices.index(pick(d.choices)))
        elif d.kind == "mqa":
            vec.append(d.choices.index(1 if largest else 0))
        else:
            opts = space.block_choices(d.index == 0 and space.stages[d.stage].strides()[0] == 2)
            by_label = {o.label: o for o in opts}
            vec.append(d.choices.index(pick(d.choices, key=lambda lab: _uib_size(by_label[lab]))))
    return canonical(space, np.asarray(vec, dtype=np.int64))


def largest_arch(space: SearchSpace) -> ArchSpec:
    """The largest member of ``space`` (see :func:`extreme_vector`)."""
    return decode(space, extreme_vector(space, True))


def smallest_arch(space: SearchSpace) -> ArchSpec:
    """The smallest member of ``space`` (see :func:`extreme_vector`)."""
    return decode(space, extreme_vector(space, False))


__all__ = [
    "LAYOUT_CACHE",
    "Supernet",
    "active_mask",
    "check_inheritable",
    "extreme_vector",
    "largest_arch",
    "smallest_arch",
    "stride2_count",
    "training_space",
]


# ----------------------------------------------------------------------------------------------
# the supernet
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One block of a member: storage key, its spec and input shape."""

    key: str
    spec: BlockSpec
    inp: Shape


def _slice(t: torch.Tensor, shape: Sequence[int], what: str) -> torch.Tensor:
    """The leading channels of ``t`` in dims 0-1 and the centre of its kernel dims (2-3)."""
    if tuple(t.shape) == tuple(shape):
        return t
    if t.dim() != len(shape):
        raise RuntimeError(f"supernet: {what} has rank {t.dim()}, the subnet needs {len(shape)}")  # pragma: no cover
    idx: list[slice] = []
    for d, (big, small) in enumerate(zip(t.shape, shape)):
        if small > big:  # pragma: no cover - excluded by construction (see Supernet.verify_storage)
            raise RuntimeError(f"supernet: {what} dim {d} is {big}, the subnet needs {small}")
        if d >= 2:
            off = (big - small) // 2
            idx.append(slice(off, off + small))
        else:
            idx.append(slice(0, small))
    return t[tuple(idx)]


def _centre_kernel(small: torch.Size, big: torch.Size) -> int | None:
    """``k`` when a ``k``×``k`` convolution kernel of shape ``small`` is the centre of the larger stored
    kernel of shape ``big`` (what a kernel transform applies to), else None."""
    return int(small[-1]) if len(small) == 4 and small[-1] < big[-1] else None


def _transform_key(key: str, name: str, k: int) -> str:
    """ParameterDict key of the kernel transform of tensor ``name`` at position ``key`` to ``k``×``k``."""
    return f"{key}__{name.replace('.', '_')}__{k}"


def check_inheritable(own: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise a one-line NasError unless ``state`` (a supernet's ``state_dict()``) holds every tensor of
    ``own`` (another's; shapes suffice, e.g. on the meta device) at least as large, so that
    :meth:`Supernet.inherit` can slice it. Kernel transforms may be missing."""
    for name, t in own.items():
        src = state.get(name)
        if src is None:
            if name.startswith("kernel_transforms."):
                continue
            raise NasError(f"--init-from: {source} has no {name}: a supernet of a space that does not contain this one")
        if src.dim() != t.dim() or any(s < d for s, d in zip(src.shape, t.shape)):
            raise NasError(
                f"--init-from: {source} holds {name} as {tuple(src.shape)}, smaller than {tuple(t.shape)}: "
                "a supernet of a space that does not contain this one"
            )


class Supernet(nn.Module):
    """Weight-sharing supernet over ``space`` (see the module docstring).

    ``space`` is the search space as the user gives it (its resolution is the deployment resolution
    that latency tables see); the network trains and runs at ``resolution`` with ``num_classes``
    outputs. Any member of the space — in any phase, at the space's or the training resolution —
    is accepted by :meth:`forward` and :meth:`extract`.
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        resolution: int | None = None,
        num_classes: int | None = None,
        seed: int = 0,
        kernel_transform: bool = False,
    ) -> None:
        super().__init__()
        self.search_space = space
        self.space = training_space(space, resolution or space.resolution, num_classes or space.num_classes)
        self.resolution = self.space.resolution
        self.num_classes = self.space.num_classes
        self.seed = seed
        self.body = nn.ModuleDict()
        self._positions: dict[str, list[tuple[BlockSpec, Shape]]] = {}
        self._build()
        self.head = Head(self.space.head, self._head_in, self.num_classes)
        init_weights(self, seed)
        # A zero classifier starts every subnet at chance-level loss; the builder's init (±1/√classes)
        # gives wide heads with few classes (e.g. 1280 → 10) logits of std ≈ 5 and a slow start.
        nn.init.zeros_(self.head.classifier.weight)
        self._templates: dict[str, nn.Module] = {}
        self._layouts: OrderedDict[str, tuple[ArchSpec, tuple[_Step, ...]]] = OrderedDict()
        self.kernel_transform = kernel_transform
        self.kernel_transforms = nn.ParameterDict()
        if kernel_transform:
            for key, name, k in self._smaller_kernels():
                self.kernel_transforms[_transform_key(key, name, k)] = nn.Parameter(torch.eye(k * k))

    # -- construction --------------------------------------------------------------------------

    def _build(self) -> None:
        sp = self.space
        h = w = sp.resolution
        self.body["stem"] = build_block(sp.stem, Shape(h, w, 3))
        self._positions["stem"] = [(sp.stem, Shape(h, w, 3))]
        hw = conv_out(h, sp.stem.stride)
        geo = Geometry(hw, hw, (sp.stem.out_channels,))
        for i, st in enumerate(sp.stages):
            positions, geo = st.positions(sp, i, geo)
            for p in positions:
                self.body[p.key] = build_block(p.storage, p.inp)
                self._positions[p.key] = list(p.variants)
        self._head_in = max(geo.channels)
        self._head_variants = geo.channels

    def _smaller_kernels(self) -> list[tuple[str, str, int]]:
        """(position, tensor name, kernel) of every convolution kernel some member takes as the centre
        of a larger stored kernel."""
        out: set[tuple[str, str, int]] = set()
        for key, variants in self._positions.items():
            big = dict(self.body[key].named_parameters())
            for spec, inp in variants:
                for name, t in self._template(spec, inp).named_parameters():
                    k = _centre_kernel(t.shape, big[name].shape)
                    if k is not None:
                        out.add((key, name, k))
        return sorted(out)

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that weight decay must not touch (the kernel transforms: decay would pull
        them towards zero, not towards their identity start)."""
        return {f"kernel_transforms.{k}" for k in self.kernel_transforms}

    def verify_storage(self) -> None:
        """Check that every block any member can contain is a slice of its position's storage (raises
        :class:`SpecError` otherwise; the construction guarantees it, tests call this)."""
        for key, variants in self._positions.items():
            big = dict(self.body[key].state_dict())
            for spec, inp in variants:
                tmpl = self._template(spec, inp)
                for name, t in [*tmpl.named_parameters(), *tmpl.named_buffers()]:
                    if name not in big or any(s > b for s, b in zip(t.shape, big[name].shape)):
                        raise SpecError(f"supernet: position {key} cannot hold {block_key(spec, inp)} ({name})")

    # -- templates and layouts -----------------------------------------------------------------

    def _template(self, spec: BlockSpec | None, inp: Shape) -> nn.Module:
        """Parameter-free (meta-device) module of one block, cached by its layer key."""
        key = block_key(spec, inp) if spec is not None else f"head@{inp.c}"
        mod = self._templates.get(key)
        if mod is None:
            with torch.device("meta"):
                mod = build_block(spec, inp) if spec is not None else Head(self.space.head, inp.c, self.num_classes)
            self._templates[key] = mod
        return mod

    def normalize(self, arch: ArchSpec) -> ArchSpec:
        """``arch`` at the training resolution and class count."""
        if arch.resolution == self.resolution and arch.num_classes == self.num_classes:
            return arch
        try:
            return dataclasses.replace(arch, resolution=self.resolution, num_classes=self.num_classes)
        except SpecError as exc:
            raise NasError(f"architecture does not run at the supernet's resolution {self.resolution}: {exc}") from None

    def layout(self, arch: ArchSpec) -> tuple[ArchSpec, tuple[_Step, ...]]:
        """(normalised arch, its blocks with their storage keys); raises NasError for non-members."""
        hit = self._layouts.get(arch.arch)
        if hit is not None:
            self._layouts.move_to_end(arch.arch)
            return hit
        norm = self.normalize(arch)
        try:
            widths = widths_of(self.space, norm)
        except SpecError as exc:
            raise NasError(f"not a member of the supernet's space {self.space.name}: {exc}") from None
        layers = norm.layers
        steps = [_Step("stem", layers[0].spec, layers[0].in_shape)]
        pos = 1
        for i, st in enumerate(self.space.stages):
            keys = st.position_keys(i, widths[i], [layer.spec for layer in layers[pos:]])
            steps += [_Step(key, layer.spec, layer.in_shape) for key, layer in zip(keys, layers[pos:])]
            pos += len(keys)
        out = (norm, tuple(steps))
        self._layouts[arch.arch] = out
        self._layouts[norm.arch] = out
        while len(self._layouts) > LAYOUT_CACHE:
            self._layouts.popitem(last=False)
        return out

    def _sliced(self, storage: nn.Module, tmpl: nn.Module, key: str, fresh_stats: bool) -> dict[str, torch.Tensor]:
        big: dict[str, torch.Tensor] = dict(storage.named_parameters())
        big.update(storage.named_buffers())
        out: dict[str, torch.Tensor] = {}
        for name, t in [*tmpl.named_parameters(), *tmpl.named_buffers()]:
            s = _slice(big[name], t.shape, f"{key}.{name}")
            k = _centre_kernel(t.shape, big[name].shape) if self.kernel_transform else None
            if k is not None:
                s = (s.reshape(-1, k * k) @ self.kernel_transforms[_transform_key(key, name, k)]).reshape(s.shape)
            if fresh_stats and (
                name.endswith("running_mean") or name.endswith("running_var") or name.endswith("num_batches_tracked")
            ):
                s = s.clone()
            out[name] = s
        return out

    def _run(self, key: str, storage: nn.Module, tmpl: nn.Module, x: torch.Tensor, fresh_stats: bool) -> torch.Tensor:
        tmpl.train(self.training)
        return functional_call(tmpl, self._sliced(storage, tmpl, key, fresh_stats), (x,))

    # -- public API ----------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, arch: ArchSpec, *, track_bn: bool = True) -> torch.Tensor:
        """Logits of subnet ``arch`` on ``x`` (N×3×R×R at the training resolution R).

        In training mode BatchNorm normalises with batch statistics and, unless ``track_bn`` is
        false, updates the shared running statistics (the slices of the active channels).
        """
        _, steps = self.layout(arch)
        fresh = self.training and not track_bn
        for st in steps:
            x = self._run(st.key, self.body[st.key], self._template(st.spec, st.inp), x, fresh)
        return self._run("head", self.head, self._template(None, Shape(1, 1, x.shape[1])), x, fresh)

    @torch.no_grad()
    def extract(self, arch: ArchSpec, *, dropout: float = 0.0) -> nn.Module:
        """Stand-alone :class:`nas.model.Net` of ``arch`` (at the training resolution and class count)
        carrying the inherited weights and BatchNorm statistics; independent of the supernet."""
        from nas.model import Net

        norm, steps = self.layout(arch)
        model = Net(norm, dropout)
        for st, mod in zip(steps, [model.stem, *model.blocks], strict=True):
            self._copy_into(st.key, self.body[st.key], mod)
        self._copy_into("head", self.head, model.head)
        return model.eval()

    @torch.no_grad()
    def extract_layer(self, key: str, spec: BlockSpec | None, inp: Shape) -> nn.Module:
        """Stand-alone module of one layer of a member — a step of :meth:`layout` (``key``, ``spec``,
        ``inp``), or the head (``key = "head"``, ``spec = None``, ``inp`` its input) — carrying the
        weights and BatchNorm statistics :meth:`extract` would give it (copies; built without a
        random init)."""
        storage = self.head if key == "head" else self.body[key]
        with torch.device("meta"):
            mod = build_block(spec, inp) if spec is not None else Head(self.space.head, inp.c, self.num_classes)
        state = {name: t.clone() for name, t in self._sliced(storage, mod, key, False).items()}
        mod.load_state_dict(state, assign=True)
        return mod.eval()

    def _copy_into(self, key: str, storage: nn.Module, mod: nn.Module) -> None:
        src = self._sliced(storage, mod, key, False)
        for name, t in [*mod.named_parameters(), *mod.named_buffers()]:
            t.copy_(src[name])

    @torch.no_grad()
    def inherit(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Start from the weights of a supernet over a space that contains this one (``state``, its
        ``state_dict()``; ``source`` names it in errors): every tensor becomes the slice of the
        other's that the same member uses there, so each member starts where it was in the other
        supernet (few-shot NAS's transfer from the one-shot supernet). Kernel transforms the other
        lacks keep their identity start; a tensor it lacks or cannot hold is a one-line NasError."""
        own = self.state_dict()
        check_inheritable(own, state, source)
        for name, t in own.items():
            if name in state:
                t.copy_(_slice(state[name], t.shape, name))

    def storage_keys(self) -> list[str]:
        """Positions of the space that own weights (``stem``, ``s{stage}_b{j}``, ``s{stage}_mqa{s}``, …)."""
        return list(self.body.keys())

    def largest(self) -> ArchSpec:
        """Largest member of the search space (deployment resolution)."""
        return largest_arch(self.search_space)

    def smallest(self) -> ArchSpec:
        """Smallest member of the search space (deployment resolution)."""
        return smallest_arch(self.search_space)

    def decisions(self) -> tuple[Decision, ...]:
        """Decisions of the search space."""
        return decisions(self.search_space)

    def decode(self, vec: Any) -> ArchSpec:
        """Member of the search space (deployment resolution) encoded by ``vec``."""
        return decode(self.search_space, vec)
