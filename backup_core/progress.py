"""Progress of a long backup or restore: documents done of total, rate, time left.

The core reports progress through a plain callback, ``progress(collection,
done, total)``, counted in documents (a backup: documents read and written,
as one figure; a restore: documents written). ``Progress`` is such a
callback that also keeps the figures, so any front-end can show them: the
CLI draws one updating line on a terminal (``TerminalProgress``), a page can
draw ``snapshot()`` or ``line()`` as it likes.

Phases. A restore first compares (reads the backup and the live data), then
takes a safety backup, then writes. A callback with a ``phase(name)`` method
(``Progress`` has one) is told when a phase starts and hears every phase; a
plain callable hears only the main phase (a restore's writes), so existing
callers see exactly what they saw before. ``reporter`` is how the core picks.

Threads. The core calls the callback on the thread that called the
operation, also when collections run in parallel jobs (``jobs.run_jobs``
relays the jobs' reports), so a page may draw from it directly. ``Progress``
is thread-safe all the same.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, TextIO

ProgressCallback = Callable[[str, int, int], None]
"""progress(collection, documents_done, documents_total)"""

# estimates of the time left are shown only once this much time has passed (early rates are noise)
ESTIMATE_AFTER_S = 0.5


def reporter(progress: ProgressCallback | None, phase: str, *, main: bool = False) -> ProgressCallback | None:
    """The callback to report ``phase`` to, announcing the phase to a phase-aware callback.

    A plain callable gets only the ``main`` phase (None otherwise: nothing to report)."""
    if progress is None:
        return None
    announce = getattr(progress, "phase", None)
    if callable(announce):
        announce(phase)
        return progress
    return progress if main else None


def duration_text(seconds: float) -> str:
    """``under 0.1 s``, ``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 4 min``."""
    if seconds < 0.1:
        return "under 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _rate_and_eta(done: int, total: int, elapsed: float) -> tuple[float | None, float | None]:
    rate = done / elapsed if elapsed > 0 and done > 0 else None
    eta = None
    if rate and elapsed >= ESTIMATE_AFTER_S and total > done:
        eta = (total - done) / rate
    elif total and done >= total:
        eta = 0.0
    return rate, eta


@dataclass(frozen=True)
class CollectionState:
    """One collection in the current phase."""

    name: str
    done: int
    total: int
    elapsed_s: float  # since its first report
    rate: float | None  # documents per second
    eta_s: float | None  # None: not known yet
    finished: bool

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else max(0.0, min(1.0, self.done / self.total))


@dataclass(frozen=True)
class Snapshot:
    """The figures of the current phase, over all its collections."""

    label: str
    phase: str | None
    done: int
    total: int  # of the collections reported so far
    elapsed_s: float  # since the phase started
    rate: float | None  # documents per second
    eta_s: float | None  # None: not known yet
    collections: tuple[CollectionState, ...]  # in the order they first reported

    @property
    def fraction(self) -> float:
        return 1.0 if self.total <= 0 else max(0.0, min(1.0, self.done / self.total))

    @property
    def running(self) -> list[str]:
        return [c.name for c in self.collections if not c.finished]


class Progress:
    """A ``progress`` callback that keeps the figures: pass it to ``create_backup`` or ``restore_backup``.

    ``snapshot()`` gives the figures, ``line()`` one line of text, e.g.
    ``backup · Equipment · 45,000 / 100,000 documents (45 %) · 4,100 documents/s · about 13 s left``;
    ``collection_line(name)`` the same for one collection. ``on_change`` (optional) is called after
    every report, with this object.
    """

    def __init__(self, label: str = "", *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[["Progress"], None] | None = None) -> None:
        self.label = label
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._phase: str | None = None
        self._phase_started = clock()
        # name -> [done, total, first report, last report]
        self._collections: dict[str, list] = {}

    # ---- the callback the core calls
    def __call__(self, collection: str, done: int, total: int) -> None:
        now = self._clock()
        with self._lock:
            state = self._collections.get(collection)
            if state is None:
                state = self._collections[collection] = [0, 0, now, now]
            state[0], state[1], state[3] = max(0, int(done)), max(0, int(total)), now
        if self._on_change is not None:
            self._on_change(self)

    def phase(self, name: str) -> None:
        """A new phase starts: its figures start from zero."""
        with self._lock:
            self._phase = name
            self._phase_started = self._clock()
            self._collections = {}
        if self._on_change is not None:
            self._on_change(self)

    # ---- the figures
    def snapshot(self) -> Snapshot:
        now = self._clock()
        with self._lock:
            items = [(n, *s) for n, s in self._collections.items()]
            phase, started = self._phase, self._phase_started
        states = []
        for name, done, total, first, _last in items:
            elapsed = now - first
            finished = done >= total  # (an empty collection is done as soon as it starts)
            rate, eta = _rate_and_eta(done, total, elapsed)
            states.append(CollectionState(name, min(done, total) if total else done, total, elapsed, rate,
                                          eta, finished))
        done = sum(c.done for c in states)
        total = sum(c.total for c in states)
        elapsed = now - started
        rate, eta = _rate_and_eta(done, total, elapsed)
        return Snapshot(self.label, phase, done, total, elapsed, rate, eta, tuple(states))

    def line(self) -> str:
        s = self.snapshot()
        head = [p for p in (s.label, s.phase) if p]
        running = s.running
        if running:
            head.append(", ".join(running) if len(running) <= 3 else f"{len(running)} collections")
        if not s.collections:
            return " · ".join(head + ["starting"])
        return " · ".join(head + _figures(s.done, s.total, s.rate, s.eta_s))

    def collection_line(self, name: str) -> str:
        for c in self.snapshot().collections:
            if c.name == name:
                return " · ".join([name] + _figures(c.done, c.total, c.rate, c.eta_s))
        return f"{name} · waiting"


def _figures(done: int, total: int, rate: float | None, eta: float | None) -> list[str]:
    parts = [f"{done:,} / {total:,} documents" + (f" ({100 * done // total} %)" if total else "")]
    if rate:
        parts.append(f"{rate:,.0f} documents/s")
    if total and done < total:
        parts.append(f"about {duration_text(eta)} left" if eta is not None else "estimating the time left")
    return parts


class TerminalProgress(Progress):
    """A ``Progress`` drawn as one updating line on a terminal (``\\r``, at most every ``redraw_s``).

    ``close()`` clears the line, so what is printed afterwards starts on a clean line.
    """

    def __init__(self, label: str, stream: TextIO, *, redraw_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(label, clock=clock, on_change=self._draw)
        self.stream = stream
        self.redraw_s = redraw_s
        self._drawn = float("-inf")
        self._shown = False

    def phase(self, name: str) -> None:
        self._drawn = float("-inf")  # a new phase is shown at once
        super().phase(name)

    def _draw(self, _self: Progress) -> None:
        now = self._clock()
        if now - self._drawn < self.redraw_s:
            return
        self._drawn = now
        from .cli.common import printable  # (collection names come from the database)

        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = printable(self.line(), one_line=True)
        if len(text) > width:
            text = text[:max(0, width - 1)] + "…"
        try:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = True
        except (OSError, ValueError):
            pass  # a terminal that went away must not fail the operation

    def close(self) -> None:
        if self._shown:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self._shown = False

    def __enter__(self) -> "TerminalProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def terminal_progress(label: str, stream: TextIO | None = None) -> TerminalProgress | None:
    """A ``TerminalProgress`` on ``stream`` (default stderr) when it is a terminal, else None:
    piped or redirected output and logs get no progress lines at all."""
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(label, stream) if tty else None


__all__ = ["ProgressCallback", "Progress", "TerminalProgress", "Snapshot", "CollectionState", "reporter",
           "terminal_progress", "duration_text"]
