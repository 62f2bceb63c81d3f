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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.errors import SpecError
from nas.space._schema import FixedStage, FusedStage, SearchSpace, Stage, UIBChoice, UIBStage
from nas.spec import ArchSpec, BlockSpec, FusedIBSpec, MQASpec, Shape, UIBSpec, block_key, head_key
from nas.spec.blocks import conv_out


@dataclass(frozen=True)
class Decision:
    """One searchable choice: a stable name and its options (labels shown to users and optuna)."""

    name: str
    kind: str  # channels | depth | uib | mqa
    stage: int
    index: int  # block index (uib) or slot index (mqa); -1 for stage-level decisions
    choices: tuple[Any, ...]

    @property
    def radix(self) -> int:
        """Number of options."""
        return len(self.choices)


@dataclass(frozen=True)
class Slot:
    """A place in every member where one block may sit, for vectorised lookups.

    ``key_for(values)`` gives the layer key at this slot for the values (choice indices) of
    ``deps`` — decision indices in the encoding vector, with ``radices`` options each — or ``None``
    when no block sits there for those values (a block beyond the chosen depth).
    """

    name: str
    deps: tuple[int, ...]
    radices: tuple[int, ...]
    key_for: Callable[[tuple[int, ...]], str | None]

    def keys(self) -> Iterator[tuple[tuple[int, ...], str | None]]:
        """Every combination of dependency values (row-major) with its key."""
        for flat in range(int(np.prod(self.radices, dtype=np.int64)) if self.radices else 1):
            vals = tuple(int(v) for v in np.unravel_index(flat, self.radices)) if self.radices else ()
            yield vals, self.key_for(vals)


# ----------------------------------------------------------------------------------------------
# decisions
# ----------------------------------------------------------------------------------------------


def decisions(space: SearchSpace) -> tuple[Decision, ...]:
    """The flat decisions of this space and phase, in encoding order (single-option choices omitted)."""
    if "decisions" in space._cache:
        return space._cache["decisions"]  # type: ignore[no-any-return]
    out: list[Decision] = []
    for i, st in enumerate(space.stages):
        if isinstance(st, FixedStage):
            continue
        channels, depths = space.widths(i)
        if len(channels) > 1:
            out.append(Decision(f"stage{i}.channels", "channels", i, -1, channels))
        if len(depths) > 1:
            out.append(Decision(f"stage{i}.depth", "depth", i, -1, depths))
        if not isinstance(st, UIBStage) or space.phase == "coarse":
            continue
        for j in range(max(depths)):
            opts = space.block_choices(j == 0 and st.stride == 2)
            if len(opts) > 1:
                out.append(Decision(f"stage{i}.block{j}.uib", "uib", i, j, tuple(c.label for c in opts)))
        if st.attention is not None:
            for s in range(st.attention.slots):
                if any(p - (d - st.attention.slots) == s for d in depths for p in st.mqa_positions(d)):
                    out.append(Decision(f"stage{i}.mqa{s}", "mqa", i, s, (0, 1)))
    result = tuple(out)
    space._cache["decisions"] = result
    return result


def _index(space: SearchSpace) -> dict[tuple[str, int, int], int]:
    if "index" not in space._cache:
        space._cache["index"] = {(d.kind, d.stage, d.index): n for n, d in enumerate(decisions(space))}
    return space._cache["index"]  # type: ignore[no-any-return]


class _Values:
    """Reads decision values from a vector, falling back to the only option of omitted decisions."""

    def __init__(self, space: SearchSpace, vec: Any):
        self.space, self.vec, self.idx = space, vec, _index(space)

    def pick(self, kind: str, stage: int, index: int, options: tuple[Any, ...]) -> Any:
        n = self.idx.get((kind, stage, index))
        if n is None:
            return options[0]
        v = int(self.vec[n])
        if not 0 <= v < len(options):
            raise SpecError(f"{self.space.name}: value {v} out of range for decision {decisions(self.space)[n].name}")
        return options[v]

    def widths(self, i: int) -> tuple[int, int]:
        channels, depths = self.space.widths(i)
        return self.pick("channels", i, -1, channels), self.pick("depth", i, -1, depths)

    def variant(self, i: int, j: int, strided: bool) -> UIBChoice:
        if self.space.phase == "coarse":
            return self.space.coarse_block
        return self.pick("uib", i, j, self.space.block_choices(strided))  # type: ignore[no-any-return]

    def mqa(self, i: int, s: int) -> bool:
        if self.space.phase == "coarse":
            return False
        return bool(self.pick("mqa", i, s, (0, 1)))


# ----------------------------------------------------------------------------------------------
# decode / encode
# ----------------------------------------------------------------------------------------------


def _stage_blocks(space: SearchSpace, i: int, st: Stage, vals: _Values) -> list[BlockSpec]:
    if isinstance(st, FixedStage):
        return list(st.blocks)
    c, d = vals.widths(i)
    if isinstance(st, FusedStage):
        return [FusedIBSpec(c, st.kernel, st.stride if j == 0 else 1, st.expansion, space.activation) for j in range(d)]
    blocks: list[BlockSpec] = []
    mqa_at = set()
    if st.attention is not None:
        for p in st.mqa_positions(d):
            if vals.mqa(i, p - (d - st.attention.slots)):
                mqa_at.add(p)
    for j in range(d):
        if j in mqa_at:
            assert st.attention is not None
            blocks.append(st.attention.block(c, space.layer_scale))
        strided = j == 0 and st.stride == 2
        choice = vals.variant(i, j, strided)
        blocks.append(choice.block(c, st.stride if j == 0 else 1, space.activation, space.layer_scale))
    return blocks


def decode(space: SearchSpace, vec: Any) -> ArchSpec:
    """Architecture of an encoding vector (inactive positions are ignored)."""
    v = np.asarray(vec)
    if v.shape != (len(decisions(space)),):
        raise SpecError(f"{space.name}: encoding must have {len(decisions(space))} entries (got shape {v.shape})")
    vals = _Values(space, v)
    blocks: list[BlockSpec] = []
    for i, st in enumerate(space.stages):
        blocks += _stage_blocks(space, i, st, vals)
    return ArchSpec(space.resolution, space.stem, tuple(blocks), space.head, space.num_classes)


def _active_mask(space: SearchSpace, vecs: np.ndarray) -> np.ndarray:
    """Boolean matrix: which decisions are active for each row of ``vecs`` (n × d)."""
    ds = decisions(space)
    idx = _index(space)
    mask = np.ones(vecs.shape, dtype=bool)
    for n, dec in enumerate(ds):
        if dec.kind not in ("uib", "mqa"):
            continue
        st = space.stages[dec.stage]
        assert isinstance(st, UIBStage)
        _, depths = space.widths(dec.stage)
        dn = idx.get(("depth", dec.stage, -1))
        depth = np.full(len(vecs), depths[0]) if dn is None else np.asarray(depths)[vecs[:, dn]]
        if dec.kind == "uib":
            mask[:, n] = dec.index < depth
        else:
            assert st.attention is not None
            mask[:, n] = depth - st.attention.slots + dec.index >= 1
    return mask


def canonical(space: SearchSpace, vecs: np.ndarray) -> np.ndarray:
    """Set inactive decisions to 0 (rows of an n × d matrix, or one vector)."""
    arr = np.atleast_2d(np.asarray(vecs, dtype=np.int64)).copy()
    arr[~_active_mask(space, arr)] = 0
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
    ds = decisions(space)
    idx = _index(space)
    vec = np.zeros(len(ds), dtype=np.int64)

    def put(kind: str, stage: int, index: int, options: tuple[Any, ...], value: Any, what: str) -> None:
        if value not in options:
            raise _fail(space, f"stage {stage}: {what} {value} not among {list(options)}")
        n = idx.get((kind, stage, index))
        if n is not None:
            vec[n] = options.index(value)

    blocks = arch.blocks
    pos = 0
    for i, st in enumerate(space.stages):
        if isinstance(st, FixedStage):
            got = blocks[pos : pos + len(st.blocks)]
            if tuple(got) != st.blocks:
                raise _fail(space, f"stage {i}: fixed blocks differ")
            pos += len(st.blocks)
            continue
        channels, depths = space.widths(i)
        # A stage is the run of its own block kind(s) at one width, until the next stage's strided
        # first block (or a width change; stage boundaries are unambiguous by construction).
        kinds: tuple[type, ...] = (FusedIBSpec,) if isinstance(st, FusedStage) else (UIBSpec, MQASpec)
        start = pos
        if pos >= len(blocks) or not isinstance(blocks[pos], kinds):
            raise _fail(space, f"stage {i}: expected a {st.kind} block at position {pos}")
        c = blocks[pos].out_channels
        pos += 1
        while pos < len(blocks) and isinstance(blocks[pos], kinds) and blocks[pos].stride == 1:
            if blocks[pos].out_channels != c:
                break
            pos += 1
        run = blocks[start:pos]
        put("channels", i, -1, channels, c, "channels")
        if isinstance(st, FusedStage):
            for j, b in enumerate(run):
                want = FusedIBSpec(c, st.kernel, st.stride if j == 0 else 1, st.expansion, space.activation)
                if b != want:
                    raise _fail(space, f"stage {i}: block {j} is not the stage's FusedIB")
            put("depth", i, -1, depths, len(run), "depth")
            continue
        uibs = [b for b in run if isinstance(b, UIBSpec)]
        d = len(uibs)
        put("depth", i, -1, depths, d, "depth")
        allowed_mqa = set(st.mqa_positions(d)) if space.phase != "coarse" else set()
        u = 0
        prev_mqa = False
        for b in run:
            if isinstance(b, MQASpec):
                assert st.attention is not None or not allowed_mqa
                if prev_mqa or u not in allowed_mqa or st.attention is None:
                    raise _fail(space, f"stage {i}: Mobile MQA not allowed before UIB {u}")
                if b != st.attention.block(c, space.layer_scale):
                    raise _fail(space, f"stage {i}: MQA parameters differ from the stage's attention")
                n = idx.get(("mqa", i, u - (d - st.attention.slots)))
                if n is not None:
                    vec[n] = 1
                prev_mqa = True
                continue
            if not isinstance(b, UIBSpec):
                raise _fail(space, f"stage {i}: unexpected {b.kind} block")
            strided = u == 0 and st.stride == 2
            choice = UIBChoice.of(b)
            if b != choice.block(c, st.stride if u == 0 else 1, space.activation, space.layer_scale):
                raise _fail(space, f"stage {i}: UIB {u} has a stride, activation or layer scale the space does not use")
            if space.phase == "coarse":
                if choice != space.coarse_block:
                    raise _fail(space, f"stage {i}: UIB {u} is not the coarse block {space.coarse_block.label}")
            else:
                opts = space.block_choices(strided)
                put("uib", i, u, tuple(o.label for o in opts), choice.label, f"UIB {u} variant")
            prev_mqa = False
            u += 1
        if prev_mqa:
            raise _fail(space, f"stage {i}: ends with an MQA block")
    if pos != len(blocks):
        raise _fail(space, f"{len(blocks) - pos} extra block(s) after the last stage")
    return vec


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
        sp = space.with_phase(phase)  # type: ignore[arg-type]
        try:
            vec = encode(sp, arch)
        except SpecError as exc:
            last = exc
            continue
        vals = _Values(sp, vec)
        return tuple(None if isinstance(st, FixedStage) else vals.widths(i) for i, st in enumerate(space.stages))
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
        if isinstance(st, FixedStage):
            continue
        channels, depths = space.widths(i)
        if isinstance(st, FusedStage) or space.phase == "coarse":
            total *= len(channels) * len(depths)
            continue
        n_first = len(space.block_choices(st.stride == 2))
        n_rest = len(space.block_choices(False))
        per_width = sum(n_first * n_rest ** (d - 1) * 2 ** len(st.mqa_positions(d)) for d in depths)
        total *= len(channels) * per_width
    return total


def log10_size(space: SearchSpace) -> float:
    """log10 of :func:`size` (exact integer arithmetic underneath)."""
    import math

    return math.log10(size(space))


# ----------------------------------------------------------------------------------------------
# slots and distinct blocks
# ----------------------------------------------------------------------------------------------


def _stage_geometry(space: SearchSpace) -> list[tuple[int, int, tuple[int, ...]]]:
    """Per stage: (h, w) of its input and the possible input channels."""
    h = w = space.resolution
    h, w = conv_out(h, space.stem.stride), conv_out(w, space.stem.stride)
    in_c: tuple[int, ...] = (space.stem.out_channels,)
    geo = []
    for i, st in enumerate(space.stages):
        geo.append((h, w, in_c))
        if isinstance(st, FixedStage):
            shape = Shape(h, w, in_c[0])
            for b in st.blocks:
                shape = b.out_shape(shape)
            h, w, in_c = shape.h, shape.w, (shape.c,)
        else:
            h, w = conv_out(h, st.stride), conv_out(w, st.stride)
            in_c = space.widths(i)[0]
    geo.append((h, w, in_c))  # the head's input
    return geo


def slots(space: SearchSpace) -> list[Slot]:
    """Every block position of the space with the decisions that determine its block (see :class:`Slot`)."""
    if "slots" in space._cache:
        return space._cache["slots"]  # type: ignore[no-any-return]
    ds = decisions(space)
    idx = _index(space)
    geo = _stage_geometry(space)
    out: list[Slot] = [
        Slot("stem", (), (), lambda _v: block_key(space.stem, Shape(space.resolution, space.resolution, 3)))
    ]

    def dep(kind: str, stage: int, index: int) -> int | None:
        return idx.get((kind, stage, index))

    prev_channels_dep: int | None = None  # decision giving the previous stage's width
    for i, st in enumerate(space.stages):
        h, w, in_choices = geo[i]
        if isinstance(st, FixedStage):
            shape = Shape(h, w, in_choices[0])
            for j, b in enumerate(st.blocks):
                out.append(Slot(f"stage{i}.fixed{j}", (), (), lambda _v, b=b, s=shape: block_key(b, s)))
                shape = b.out_shape(shape)
            prev_channels_dep = None
            continue
        channels, depths = space.widths(i)
        c_dep, d_dep = dep("channels", i, -1), dep("depth", i, -1)
        hs, ws = conv_out(h, st.stride), conv_out(w, st.stride)
        for j in range(max(depths)):
            v_dep = dep("uib", i, j) if isinstance(st, UIBStage) else None
            raw = [(prev_channels_dep if j == 0 else None), c_dep, (d_dep if j > 0 else None), v_dep]
            deps = tuple(x for x in raw if x is not None)

            def key_for(vals: tuple[int, ...], *, i: int = i, j: int = j, st: Stage = st, raw: list[int | None] = raw,
                        channels: tuple[int, ...] = channels, depths: tuple[int, ...] = depths,
                        in_choices: tuple[int, ...] = in_choices, h: int = h, w: int = w, hs: int = hs, ws: int = ws) -> str | None:  # fmt: skip
                it = iter(vals)
                get = {n: (next(it) if r is not None else 0) for n, r in zip(("prev", "c", "d", "v"), raw, strict=True)}
                c = channels[get["c"]]
                if j > 0 and depths[get["d"]] <= j:
                    return None
                if j == 0:
                    inp = Shape(h, w, in_choices[get["prev"]])
                else:
                    inp = Shape(hs, ws, c)
                stride = st.stride if j == 0 else 1
                if isinstance(st, FusedStage):
                    return block_key(FusedIBSpec(c, st.kernel, stride, st.expansion, space.activation), inp)
                if space.phase == "coarse":
                    choice = space.coarse_block
                else:
                    choice = space.block_choices(j == 0 and st.stride == 2)[get["v"]]
                return block_key(choice.block(c, stride, space.activation, space.layer_scale), inp)

            out.append(Slot(f"stage{i}.block{j}", deps, tuple(ds[x].radix for x in deps), key_for))
        if isinstance(st, UIBStage) and st.attention is not None and space.phase != "coarse":
            attn = st.attention
            for s in range(attn.slots):
                m_dep = dep("mqa", i, s)
                if m_dep is None:
                    continue
                raw_m = [c_dep, d_dep, m_dep]
                deps = tuple(x for x in raw_m if x is not None)

                def mqa_key(vals: tuple[int, ...], *, raw_m: list[int | None] = raw_m, s: int = s, attn: Any = attn,
                            channels: tuple[int, ...] = channels, depths: tuple[int, ...] = depths,
                            hs: int = hs, ws: int = ws) -> str | None:  # fmt: skip
                    it = iter(vals)
                    get = {n: (next(it) if r is not None else 0) for n, r in zip(("c", "d", "m"), raw_m, strict=True)}
                    d = depths[get["d"]]
                    if not get["m"] or d - attn.slots + s < 1:
                        return None
                    c = channels[get["c"]]
                    return block_key(attn.block(c, space.layer_scale), Shape(hs, ws, c))

                out.append(Slot(f"stage{i}.mqa{s}", deps, tuple(ds[x].radix for x in deps), mqa_key))
        prev_channels_dep = c_dep
    h, w, in_choices = geo[-1]
    head_dep = prev_channels_dep
    head_deps = (head_dep,) if head_dep is not None else ()
    out.append(
        Slot(
            "head",
            head_deps,
            tuple(ds[x].radix for x in head_deps),
            lambda vals: head_key(space.head, space.num_classes, Shape(h, w, in_choices[vals[0] if vals else 0])),
        )
    )
    space._cache["slots"] = out
    return out


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
