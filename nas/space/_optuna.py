"""Optuna bridge: every decision becomes one flat categorical with a stable name.

Flat categoricals keep TPE/NSGA-II happy in conditional spaces: every trial suggests every decision
(``stage3.block7.uib = "a3_k5_e4"``); decisions inactive for the chosen depth are simply ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from nas.errors import SpecError
from nas.space._ops import canonical, decisions, decode
from nas.space._schema import SearchSpace
from nas.spec import ArchSpec


def suggest(space: SearchSpace, trial: Any) -> ArchSpec:
    """Ask ``trial`` (an ``optuna.Trial``) for every decision of the space and return the architecture."""
    params = {d.name: trial.suggest_categorical(d.name, list(d.choices)) for d in decisions(space)}
    return arch_from_params(space, params)


def vector_from_params(space: SearchSpace, params: Mapping[str, Any]) -> np.ndarray:
    """Canonical encoding from a mapping decision name → chosen option (e.g. ``trial.params``)."""
    vec = np.zeros(len(decisions(space)), dtype=np.int64)
    for n, d in enumerate(decisions(space)):
        if d.name not in params:
            raise SpecError(f"{space.name}: parameter {d.name!r} missing (a trial from another space or stage?)")
        try:
            vec[n] = d.choices.index(params[d.name])
        except ValueError:
            raise SpecError(f"{space.name}: {d.name}={params[d.name]!r} not among {list(d.choices)}") from None
    return canonical(space, vec)


def arch_from_params(space: SearchSpace, params: Mapping[str, Any]) -> ArchSpec:
    """Architecture from a mapping decision name → chosen option."""
    return decode(space, vector_from_params(space, params))


def params_from_arch(space: SearchSpace, arch: ArchSpec) -> dict[str, Any]:
    """Decision name → option for a member (what ``study.enqueue_trial`` takes)."""
    from nas.space._ops import encode

    vec = encode(space, arch)
    return {d.name: d.choices[int(v)] for d, v in zip(decisions(space), vec, strict=True)}
