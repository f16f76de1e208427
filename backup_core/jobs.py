"""Parallel jobs: one piece of work per collection, ``jobs`` at a time, with progress and first-error-wins.

Backups, restores (planning, filling, writing) run their collections through
``run_jobs``: threads, each working on its own collection, their progress
reports relayed to the calling thread (so a page may draw from them), and a
failure reported the same whatever the timing: the error of the first
collection in the caller's order that fails.
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, TypeVar

from .progress import ProgressCallback as Progress

T = TypeVar("T")
MAX_DEFAULT_JOBS = 4


def default_jobs() -> int:
    """Collections at a time when the caller does not say: the CPUs, at most ``MAX_DEFAULT_JOBS``."""
    return max(1, min(MAX_DEFAULT_JOBS, os.cpu_count() or 1))


class JobCancelled(Exception):
    """Raised inside a job when another job failed or the caller was interrupted."""


def run_jobs(names: list[str], work: Callable[[str, Progress | None], T], jobs: int,
             progress: Progress | None = None, *, discard: Callable[[T], None] | None = None) -> dict[str, T]:
    """``work(name, report)`` for every name, ``jobs`` at a time; the results by name, in ``names`` order.

    ``jobs`` <= 1 (or one name) runs in the calling thread, reporting straight
    to ``progress``. Otherwise each runs in a thread of its own and its reports
    are relayed to ``progress`` on the calling thread (so a page may draw from
    it). A failure cancels the jobs after it in ``names`` order that have not
    started yet and stops the running ones at their next report; the jobs
    before it run to their end, so that the error raised is always that of the
    first name in ``names`` order that fails, whatever the timing. Once all
    have stopped, the results of those that succeeded go to ``discard``.
    """
    if jobs <= 1 or len(names) <= 1:
        done: dict[str, T] = {}
        try:
            for n in names:
                done[n] = work(n, progress)
        except BaseException:
            _discard(done, discard)
            raise
        return done
    run = _ParallelRun(names, progress)
    run.start(work, jobs)
    if run.interrupted is None and not run.errors:
        run.drain()
        return {n: run.results[n] for n in names}
    _discard(run.results, discard)
    if run.interrupted is not None:
        raise run.interrupted
    raise run.errors[next(n for n in names if n in run.errors)]


class _ParallelRun:
    """The threads of one ``run_jobs``: their results, errors, and who must stop."""

    def __init__(self, names: list[str], progress: Progress | None) -> None:
        self.names, self.progress = names, progress
        self.events: "queue.SimpleQueue[tuple[str, int, int]]" = queue.SimpleQueue()
        # jobs after this position in ``names`` stop (len(names): none; -1: all, the caller was interrupted)
        self.stop_after = len(names)
        self.results: dict[str, object] = {}
        self.errors: dict[str, BaseException] = {}
        self.interrupted: BaseException | None = None

    def relay_for(self, position: int) -> Progress:
        def relay(collection: str, done: int, total: int) -> None:
            if position > self.stop_after:
                raise JobCancelled("stopped: another collection failed")
            if self.progress is not None:
                self.events.put((collection, done, total))
        return relay

    def drain(self) -> None:
        while self.progress is not None:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
            self.progress(*event)

    def start(self, work: Callable[[str, Progress | None], object], jobs: int) -> None:
        """Run every job; returns once all have stopped (finished, failed or cancelled)."""
        names = self.names
        with ThreadPoolExecutor(max_workers=min(jobs, len(names)), thread_name_prefix="backup-job") as pool:
            futures: dict[Future, str] = {pool.submit(work, n, self.relay_for(i)): n for i, n in enumerate(names)}
            position = {n: i for i, n in enumerate(names)}
            pending = set(futures)
            while pending:
                try:
                    finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                    if self.interrupted is None:
                        self.drain()
                except BaseException as exc:  # the caller's progress raised, or Ctrl-C
                    self.interrupted = self.interrupted or exc
                    finished = set()
                for f in finished:
                    if f.cancelled():
                        continue
                    exc = f.exception()
                    if exc is None:
                        self.results[futures[f]] = f.result()
                    elif not isinstance(exc, JobCancelled):
                        self.errors[futures[f]] = exc
                first = -1 if self.interrupted is not None else min((position[n] for n in self.errors),
                                                                    default=len(names))
                if first < self.stop_after:
                    self.stop_after = first
                    for f in pending:
                        if position[futures[f]] > first:
                            f.cancel()


def _discard(results: dict, discard: Callable | None) -> None:
    for r in results.values():
        if discard is not None:
            try:
                discard(r)
            except Exception:  # noqa: BLE001 - clean-up of a run that fails anyway
                pass
