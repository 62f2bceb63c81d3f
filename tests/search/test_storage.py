"""The search's journal: fewer fsyncs than optuna's own backend, the same records."""

from __future__ import annotations

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from nas.search._storage import SyncAtTrialEnds


def _study(storage: JournalStorage) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        trial = study.ask()
        for k in range(5):
            trial.suggest_categorical(f"p{k}", [1, 2, 3])
        trial.set_user_attr("arch", "x")
        study.tell(trial, float(trial.number))
    return study


def test_journal_syncs_at_trial_ends_only_and_reads_back_with_optunas_backend(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("os.fsync", lambda fd: synced.append(fd))
    path = str(tmp_path / "study.journal")
    _study(JournalStorage(SyncAtTrialEnds(path)))
    # study creation + (trial creation + its end) x 3 — not one per parameter or attribute (5 + 1 per trial)
    assert 4 <= len(synced) <= 8, len(synced)
    again = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    assert [t.value for t in again.trials] == [0.0, 1.0, 2.0]
    assert all(len(t.params) == 5 and t.user_attrs == {"arch": "x"} for t in again.trials)


def test_journal_lines_are_the_same_whichever_backend_wrote_them(tmp_path):
    """Same records, only the syncing differs (compared without per-process ids and times)."""
    import json

    def records(backend: type[JournalFileBackend]) -> list[dict[str, object]]:
        path = tmp_path / f"{backend.__name__}.journal"
        _study(JournalStorage(backend(str(path))))
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        for line in lines:
            for volatile in ("worker_id", "datetime_start", "datetime_complete"):
                line.pop(volatile, None)
        return lines

    assert records(SyncAtTrialEnds) == records(JournalFileBackend)
