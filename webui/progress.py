"""Progress bars for long operations: documents done of total, rate, time left.

The figures and their wording come from ``backup_core.progress`` (the CLI
draws the same ones on a terminal); this module only decides when to redraw
a Streamlit element: every redraw is a message to the browser.
"""

from __future__ import annotations

import time
from typing import Callable

from backup_core.progress import Progress, duration_text

# redraw at most this often
REDRAW_S = 0.25


class CollectionProgress:
    """The progress line of one collection of a backup (Create Backup draws one bar per collection).

    ``documents`` is what the page expects (the live count); the core reports its own expected
    total, which can differ when the collection changes meanwhile, so the text converts the
    fraction done into documents and the final line uses the count the backup actually wrote.
    """

    def __init__(self, name: str, documents: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.documents = documents if documents and documents > 0 else None
        self._clock = clock
        self._started: float | None = None
        self._finished: float | None = None
        self._last_draw = float("-inf")
        self.fraction = 0.0
        self.done_docs = 0

    def waiting_text(self) -> str:
        count = f" ({self.documents:,} documents)" if self.documents else ""
        return f"{self.name}: waiting{count}"

    def update(self, done: int, total: int) -> str | None:
        """The new text, or None when it is too soon to redraw (the last step always redraws)."""
        now = self._clock()
        if self._started is None:
            self._started = now
        finished = total <= 0 or done >= total
        if finished and self._finished is None:
            self._finished = now
        self.fraction = 1.0 if total <= 0 else max(0.0, min(1.0, done / total))
        self.done_docs = (round(self.fraction * self.documents) if self.documents is not None
                          else max(0, done))
        if not finished and now - self._last_draw < REDRAW_S:
            return None
        self._last_draw = now
        return self.text(now)

    def text(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = now - (self._started if self._started is not None else now)
        of = f" / {self.documents:,}" if self.documents is not None else ""
        parts = [f"{self.name}: {self.done_docs:,}{of} documents"]
        rate = self.done_docs / elapsed if elapsed > 0 else None
        if rate:
            parts.append(f"{rate:,.0f} documents/s")
        if self.documents is not None and self.fraction < 1.0:
            if rate and elapsed >= 0.5:
                parts.append(f"about {duration_text((self.documents - self.done_docs) / rate)} left")
            else:
                parts.append("estimating the time left")
        return " · ".join(parts)

    def finished_text(self, written: int) -> str:
        """After the run: what was actually written, in how long."""
        end = self._finished if self._finished is not None else self._clock()
        elapsed = end - self._started if self._started is not None else 0.0
        line = f"{self.name}: {written:,} / {written:,} documents · done in {duration_text(elapsed)}"
        if elapsed > 0 and written:
            line += f" · {written / elapsed:,.0f} documents/s"
        return line


class PhaseBar:
    """One progress element drawing a whole operation through its phases (a restore: comparing,
    safety backup, writing): ``callback`` is the ``progress`` argument for the core.

    ``element`` is anything with ``progress(fraction, text=...)`` (an ``st.progress``).
    """

    def __init__(self, element, label: str = "", clock: Callable[[], float] = time.monotonic) -> None:
        self.element = element
        self._clock = clock
        self._drawn = float("-inf")
        self._phase: str | None = None
        self.callback = Progress(label, clock=clock, on_change=self._draw)

    def _draw(self, progress: Progress) -> None:
        now = self._clock()
        snap = progress.snapshot()
        new_phase = snap.phase != self._phase
        self._phase = snap.phase
        if not new_phase and snap.fraction < 1.0 and now - self._drawn < REDRAW_S:
            return
        self._drawn = now
        self.element.progress(snap.fraction if snap.collections else 0.0, text=progress.line())


__all__ = ["CollectionProgress", "PhaseBar", "duration_text", "REDRAW_S"]
