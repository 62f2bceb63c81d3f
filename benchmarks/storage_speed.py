"""Trials per second that optuna's storages sustain for a search-like study (the storage default's evidence).

Each trial suggests ``--params`` categorical parameters (a MobileNetV4 space has 20–50 decisions) and
returns at once, so the rate is the storage's. Usage: ``python benchmarks/storage_speed.py [--trials 300]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


def rate(storage: object, trials: int, params: int) -> float:
    """Completed trials per second."""
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        for i in range(params):
            trial.suggest_categorical(f"p{i}", list(range(10)))
        return 0.0

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return trials / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--params", type=int, default=30)
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as d:
        rows = [
            ("in-memory", rate(None, args.trials, args.params)),
            (
                "journal file",
                rate(JournalStorage(JournalFileBackend(str(Path(d) / "j.log"))), args.trials, args.params),
            ),
            ("sqlite", rate(f"sqlite:///{d}/s.db", args.trials, args.params)),
        ]
    base = dict(rows)["sqlite"]
    print(f"{'storage':14s} {'trials/s':>9s} {'vs sqlite':>9s}")
    for name, r in rows:
        print(f"{name:14s} {r:9.0f} {r / base:8.1f}x")


if __name__ == "__main__":
    main()
