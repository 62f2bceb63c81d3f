"""``load_data``: one entry point for ``builtin[:N]``, ``.npz`` files, image folders and distillation stores
(``open_store``: a store that reloads its source data with ``load_data``)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from nas.data._builtin import BUILTIN_TRAIN_PER_CLASS, load_builtin
from nas.data._dataset import DataError, Dataset
from nas.data._files import load_folder, load_npz
from nas.data._source import DatasetSource, TrainSource
from nas.data._store import BUFFER_SHARDS, DistillStore, StoreError, is_store
from nas.inputs import as_error, regular_file


def open_store(path: str | Path, *, buffer_shards: int = BUFFER_SHARDS) -> DistillStore:
    """A finished distillation store (one-line :class:`StoreError` if missing, unfinished, empty or malformed);
    it reloads the data it was built from with :func:`load_data`."""
    return DistillStore(path, load_source=load_data, buffer_shards=buffer_shards)


def _check_resolution(store: DistillStore, resolution: int) -> None:
    if resolution != store.resolution:
        raise StoreError(
            f"{store.path}: the store holds {store.resolution} px images; --resolution {resolution} differs "
            f"(use --resolution {store.resolution})"
        )


def load_data(spec: str, resolution: int, *, val_fraction: float = 0.1, seed: int = 0) -> Dataset:
    """A data set from ``builtin[:N]``, an ``.npz`` file or an image-folder directory, at ``resolution`` px.

    Without an explicit held-out split, ``val_fraction`` of each class (stratified, ``seed``) is held out.
    A distillation store stands for the data set it was built from (reloaded with the split it
    recorded; ``val_fraction``/``seed`` are not used), so held-out evaluation and BatchNorm
    calibration work wherever a store was the training data.
    """
    if not 8 <= resolution <= 1024:
        raise DataError(f"resolution must be in [8, 1024] (got {resolution})")
    if not 0 < val_fraction < 1:
        raise DataError(f"held-out fraction must be in (0, 1) (got {val_fraction})")
    if not isinstance(spec, str) or not spec.strip():
        raise DataError("data: empty (give 'builtin', builtin:N, an .npz file or an image folder)")
    m = re.fullmatch(r"builtin(?::([0-9]{1,9}))?", spec.strip())
    if m:
        n = int(m.group(1)) if m.group(1) else BUILTIN_TRAIN_PER_CLASS
        if not 1 <= n <= 100_000:
            raise DataError(f"builtin:N takes 1 to 100000 training images per class (got {n})")
        return load_builtin(resolution, n)
    path = Path(spec).expanduser()
    kind = _kind(path, spec)
    if kind == "dir" and is_store(path):
        store = open_store(path)
        _check_resolution(store, resolution)
        return store.source_data()
    if kind == "dir":
        return load_folder(path, resolution, val_fraction, seed)
    if path.suffix.lower() == ".npz":
        with as_error(DataError):
            regular_file(path, ".npz data file")
        return load_npz(path, resolution, val_fraction, seed)
    raise DataError(f"{spec}: not a data set (expected 'builtin', an .npz file or an image-folder directory)")


def _kind(path: Path, spec: str) -> str:
    """``dir`` or ``file`` (anything else, e.g. a FIFO, is checked by the reader), without reading it."""
    try:
        st = path.stat()
    except (OSError, ValueError):
        shown = spec if len(spec) <= 80 else f"{spec[:60]}…"
        raise DataError(
            f"{shown}: no such file or directory (data is 'builtin', an .npz file or an image folder)"
        ) from None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def load_training_data(
    spec: str, resolution: int, *, val_fraction: float = 0.1, seed: int = 0
) -> tuple[TrainSource, Dataset]:
    """(what to train on, held-out data to evaluate on) for a ``--data`` value: ``builtin[:N]``, an
    ``.npz`` file or an image folder (its training split and its held-out split), or a distillation
    store (the store, streamed, and the held-out split of the data it was built from, as recorded in
    its manifest; ``val_fraction``/``seed`` are not used). A store's resolution must be ``resolution``."""
    if is_store(Path(spec).expanduser()):
        store = open_store(spec)
        _check_resolution(store, resolution)
        return store, store.source_data()
    data = load_data(spec, resolution, val_fraction=val_fraction, seed=seed)
    return DatasetSource(data), data
