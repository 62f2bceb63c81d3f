"""Operations on a search space: decisions, encode/decode, sampling, size, membership, distinct blocks
and the slot structure that vectorised latency prediction gathers over.

An architecture is encoded as one integer per :class:`Decision` (the index of the chosen option).
Decisions are flat categoricals with stable names (``stage3.channels``, ``stage3.depth``,
``stage3.block2.uib`` = ``"a3_k5_e4"``, ``stage3.mqa1`` = 0/1). In the joint space some decisions
are inactive for some members (a block beyond the chosen depth); the *canonical* encoding sets them
to 0, so ``decode(encode(a)) == a`` for every member and ``encode(decode(v)) == v`` for every
canonical ``v``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nas.errors import SpecError
from nas.space._base import Decision, Encoder, Slot, Values
from nas.space._schema import SearchSpace
from nas.spec import ArchSpec, BlockSpec

# ----------------------------------------------------------------------------------------------
# decisions
# ----------------------------------------------------------------------------------------------


def decisions(space: SearchSpace) -> tuple[Decision, ...]:
    """The flat decisions of this space and phase, in encoding order (single-option choices omitted)."""
    return space.decisions


# ----------------------------------------------------------------------------------------------
# decode / encode
# ----------------------------------------------------------------------------------------------


def decode(space: SearchSpace, vec: Any) -> ArchSpec:
    """Architecture of an encoding vector (inactive positions are ignored)."""
    v = np.asarray(vec)
    if v.shape != (len(decisions(space)),):
        raise SpecError(f"{space.name}: encoding must have {len(decisions(space))} entries (got shape {v.shape})")
    vals = Values(space, v)
    blocks: list[BlockSpec] = []
    for i, st in enumerate(space.stages):
        blocks += st.decode(space, i, vals)
    return ArchSpec(space.resolution, space.stem, tuple(blocks), space.head, space.num_classes)


def active_mask(space: SearchSpace, vecs: np.ndarray) -> np.ndarray:
    """Which decisions matter for each encoding (n × d booleans): a block-level decision only where
    its block exists at the chosen depth (stage-level decisions always)."""
    vecs = np.atleast_2d(np.asarray(vecs, dtype=np.int64))
    idx = space.decision_index
    mask = np.ones(vecs.shape, dtype=bool)
    for n, dec in enumerate(space.decisions):
        if dec.index < 0:
            continue
        _, depths = space.widths(dec.stage)
        dn = idx.get(("depth", dec.stage, -1))
        depth = np.full(len(vecs), depths[0]) if dn is None else np.asarray(depths)[vecs[:, dn]]
        m = space.stages[dec.stage].active(dec, depth)
        if m is not None:
            mask[:, n] = m
    return mask


def canonical(space: SearchSpace, vecs: np.ndarray) -> np.ndarray:
    """Set inactive decisions to 0 (rows of an n × d matrix, or one vector)."""
    arr = np.atleast_2d(np.asarray(vecs, dtype=np.int64)).copy()
    arr[~active_mask(space, arr)] = 0
    return arr if np.ndim(vecs) == 2 else arr[0]


def sample_vectors(space: SearchSpace, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` canonical encodings, each decision uniform over its options (vectorised)."""
    ds = decisions(space)
    if not ds:
        return np.zeros((n, 0), dtype=np.int64)
    cols = [rng.integers(0, d.radix, size=n) for d in ds]
    return canonical(space, np.stack(cols, axis=1))


def sample(space: SearchSpace, rng: np.random.Generator) -> ArchSpec:
    """One random member of the space in its phase (uniform per decision)."""
    return decode(space, sample_vectors(space, rng, 1)[0])


def sample_distinct(space: SearchSpace, rng: np.random.Generator, n: int, *, max_rounds: int = 100) -> list[ArchSpec]:
    """``n`` distinct random members in the order first drawn: rounds of ``n`` uniform draws until
    ``n`` are found (fewer if the space is smaller, or after ``max_rounds`` rounds)."""
    out: dict[str, ArchSpec] = {}
    for _ in range(max_rounds):
        for v in sample_vectors(space, rng, n):
            a = decode(space, v)
            out.setdefault(a.arch, a)
            if len(out) == n:
                return list(out.values())
    return list(out.values())


def _fail(space: SearchSpace, msg: str) -> SpecError:
    return SpecError(f"not in space {space.name} ({space.phase}): {msg}")


def encode(space: SearchSpace, arch: ArchSpec) -> np.ndarray:
    """Canonical encoding of a member; raises :class:`SpecError` saying why a non-member is not one."""
    if arch.resolution != space.resolution:
        raise _fail(space, f"resolution {arch.resolution} != {space.resolution}")
    if arch.stem != space.stem:
        raise _fail(space, "stem differs")
    if arch.head != space.head or arch.num_classes != space.num_classes:
        raise _fail(space, "head or number of classes differs")
    enc = Encoder(space)
    pos = 0
    for i, st in enumerate(space.stages):
        pos = st.encode(space, i, arch.blocks, pos, enc)
    if pos != len(arch.blocks):
        raise _fail(space, f"{len(arch.blocks) - pos} extra block(s) after the last stage")
    return enc.vec


def contains(space: SearchSpace, arch: ArchSpec) -> bool:
    """Whether ``arch`` is a member of the space (in its phase)."""
    try:
        encode(space, arch)
    except SpecError:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# phases
# ----------------------------------------------------------------------------------------------


def coarse_space(space: SearchSpace) -> SearchSpace:
    """The coarse stage: widths and depths only, every UIB the coarse block, no attention."""
    return space.with_phase("coarse")


def joint_space(space: SearchSpace) -> SearchSpace:
    """The one-stage (joint) space."""
    return space.with_phase("joint")


def widths_of(space: SearchSpace, arch: ArchSpec) -> tuple[tuple[int, int] | None, ...]:
    """(channels, depth) per stage of a member of the joint or coarse space (None for fixed stages)."""
    last: SpecError | None = None
    for phase in ("joint", "coarse"):
        sp = space.with_phase(phase)
        try:
            vec = encode(sp, arch)
        except SpecError as exc:
            last = exc
            continue
        vals = Values(sp, vec)
        return tuple(st.chosen_widths(vals, i) for i, st in enumerate(space.stages))
    assert last is not None
    raise last


def fix_coarse(space: SearchSpace, coarse_arch: ArchSpec) -> SearchSpace:
    """The fine space around a coarse result: its widths and depths fixed, variants and MQA searchable."""
    return space.with_phase("fine", widths_of(space, coarse_arch))


def sample_coarse(space: SearchSpace, rng: np.random.Generator) -> ArchSpec:
    """A random member of the coarse stage."""
    return sample(coarse_space(space), rng)


# ----------------------------------------------------------------------------------------------
# size
# ----------------------------------------------------------------------------------------------


def size(space: SearchSpace) -> int:
    """Exact number of architectures in the space (in its phase)."""
    total = 1
    for i, st in enumerate(space.stages):
        total *= st.size(space, i)
    return total


def log10_size(space: SearchSpace) -> float:
    """log10 of :func:`size` (exact integer arithmetic underneath)."""
    import math

    return math.log10(size(space))


# ----------------------------------------------------------------------------------------------
# slots and distinct blocks
# ----------------------------------------------------------------------------------------------


def slots(space: SearchSpace) -> list[Slot]:
    """Every block position of the space with the decisions that determine its block (see :class:`Slot`)."""
    return space.slots


def arch_slot_keys(space: SearchSpace, vec: Any) -> list[str]:
    """Layer keys of the member encoded by ``vec``, slot by slot (absent slots skipped)."""
    v = np.asarray(vec)
    keys = []
    for s in slots(space):
        k = s.key_for(tuple(int(v[d]) for d in s.deps))
        if k is not None:
            keys.append(k)
    return keys


def distinct_blocks(space: SearchSpace) -> list[str]:
    """Sorted layer keys of every (block, input shape) any member can contain — stem and head included —
    across the coarse and fine stages of a joint space. Enumerates slot options, never architectures."""
    spaces = [space]
    if space.phase == "joint":
        spaces.append(space.with_phase("coarse"))
    keys: set[str] = set()
    for sp in spaces:
        for slot in slots(sp):
            keys.update(k for _, k in slot.keys() if k is not None)
    return sorted(keys)
