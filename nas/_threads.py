"""Worker threads that a command may leave idle behind it (the CLI exits without waiting for them)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

#: Name prefix of worker threads that hold no work once the call that used them has returned.
IDLE_WORKER_PREFIX = "mnv4nas-idle-"


def idle_pool(
    workers: int, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = ()
) -> ThreadPoolExecutor:
    """A thread pool whose threads the CLI may leave behind at exit: every caller waits for its own
    futures before it returns, so none holds work when the command ends."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix=IDLE_WORKER_PREFIX, initializer=initializer, initargs=initargs
    )


__all__ = ["IDLE_WORKER_PREFIX", "idle_pool"]
