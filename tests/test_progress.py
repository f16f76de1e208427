"""progress.py: documents done of total, rate, time left; phases; the terminal line only on a terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import threading

from backup_core.progress import (Progress, TerminalProgress, duration_text, reporter, terminal_progress)

from .conftest import ROOT


class Clock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_figures_rate_and_time_left():
    clock = Clock()
    p = Progress("backup", clock=clock)
    assert p.line() == "backup · starting"
    p("Equipment", 0, 1000)
    clock.t += 0.2
    p("Equipment", 100, 1000)
    s = p.snapshot()
    assert (s.done, s.total, s.fraction) == (100, 1000, 0.1)
    assert s.eta_s is None  # too early to guess
    assert "estimating the time left" in p.line()
    clock.t += 1.8  # 2 s in: 500 documents/s
    p("Equipment", 1000 - 500 * 1, 1000)
    s = p.snapshot()
    assert s.rate == 250.0 and s.eta_s == 2.0
    assert p.line() == "backup · Equipment · 500 / 1,000 documents (50 %) · 250 documents/s · about 2.0 s left"
    p("Equipment", 1000, 1000)
    s = p.snapshot()
    assert s.running == [] and s.eta_s == 0.0 and s.collections[0].finished
    assert p.line() == "backup · 1,000 / 1,000 documents (100 %) · 500 documents/s"


def test_several_collections_add_up_and_each_has_its_own_line():
    clock = Clock()
    p = Progress("backup", clock=clock)
    p("a", 0, 100)
    clock.t += 1
    p("b", 0, 300)
    p("a", 50, 100)
    clock.t += 1
    p("b", 150, 300)
    s = p.snapshot()
    assert (s.done, s.total) == (200, 400) and s.running == ["a", "b"]
    assert s.rate == 100.0 and s.eta_s == 2.0  # 200 documents in 2 s, 200 to go
    assert p.collection_line("a") == "a · 50 / 100 documents (50 %) · 25 documents/s · about 2.0 s left"
    assert p.collection_line("b") == "b · 150 / 300 documents (50 %) · 150 documents/s · about 1.0 s left"
    assert p.collection_line("c") == "c · waiting"
    assert p.line().startswith("backup · a, b · 200 / 400 documents (50 %)")


def test_a_phase_starts_the_figures_again():
    clock = Clock()
    p = Progress("restore", clock=clock)
    p.phase("comparing backup and live data")
    p("c", 10, 10)
    clock.t += 5
    p.phase("writing")
    assert p.snapshot().collections == () and p.line() == "restore · writing · starting"
    clock.t += 1
    p("c", 3, 6)
    assert p.snapshot().phase == "writing" and p.snapshot().done == 3


def test_reporter_gives_plain_callbacks_only_the_main_phase():
    heard = []

    def plain(*a):
        heard.append(a)

    assert reporter(plain, "comparing") is None
    assert reporter(plain, "writing", main=True) is plain
    assert reporter(None, "writing", main=True) is None
    p = Progress()
    assert reporter(p, "comparing") is p and p.snapshot().phase == "comparing"


def test_progress_is_thread_safe():
    p = Progress()
    threads = [threading.Thread(target=lambda k=k: [p(f"c{k}", i, 1000) for i in range(1001)]) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = p.snapshot()
    assert (s.done, s.total, len(s.collections)) == (4000, 4000, 4)


def test_duration_text():
    assert [duration_text(s) for s in (0.05, 3.21, 42, 185, 7440)] == \
        ["under 0.1 s", "3.2 s", "42 s", "3 min 5 s", "2 h 4 min"]


def test_terminal_line_redraws_in_place_and_clears_on_close():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    clock = Clock()
    out = Tty()
    assert isinstance(terminal_progress("backup", out), TerminalProgress)
    p = TerminalProgress("backup", out, clock=clock)
    p("Equipment", 0, 10)
    p("Equipment", 5, 10)  # within redraw_s of the last line: not drawn
    clock.t += 1
    p("Equipment", 10, 10)
    p.close()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 3 and "\n" not in text
    assert "Equipment · 0 / 10 documents" in text and "10 / 10 documents" in text
    assert text.endswith("\r\x1b[K")


def test_no_terminal_no_progress():
    assert terminal_progress("backup", io.StringIO()) is None


# --------------------------------------------------------------------------
# The CLI: one updating line on a terminal's stderr, nothing when stderr is a pipe


def run_cli_on_tty(env: dict, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe): (exit code, stdout, what the tty got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            if not ready:
                proc.kill()
                raise TimeoutError(f"no output within {timeout}s: {b''.join(chunks)!r}")
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        stdout = proc.stdout.read().decode()  # type: ignore[union-attr]
        proc.wait(30)
    return proc.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


def test_an_empty_collection_is_done_at_once():
    p = Progress("backup", clock=Clock())
    p("empty", 0, 0)
    p("big", 0, 10)
    assert p.snapshot().running == ["big"] and p.collection_line("empty") == "empty · 0 / 0 documents"
