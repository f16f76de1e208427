"""The test seam (``backup_core/testseam.py``): checkpoints do nothing unless a test asks."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from backup_core import testseam
from backup_core.config import Settings

from .conftest import ROOT


def test_a_checkpoint_without_hook_or_variable_does_nothing(monkeypatch, capsys):
    monkeypatch.delenv(testseam.PAUSE_ENV, raising=False)
    testseam.checkpoint("swap")
    assert capsys.readouterr().err == ""


def test_hooks_hear_every_checkpoint_of_their_block_in_any_thread_and_may_raise():
    heard: list[str] = []
    with testseam.on_checkpoint(heard.append):
        testseam.checkpoint("fill")
        t = threading.Thread(target=testseam.checkpoint, args=("swap",))
        t.start()
        t.join()
    testseam.checkpoint("fill")  # outside the block: not heard
    assert heard == ["fill", "swap"]

    def fail(point: str) -> None:
        raise RuntimeError(f"failing at {point}")

    with testseam.on_checkpoint(fail), pytest.raises(RuntimeError, match="failing at swap"):
        testseam.checkpoint("swap")
    testseam.checkpoint("swap")  # the failing hook is gone with its block


@pytest.mark.parametrize("seconds, slept", [("0.3", 0.3), ("soon", None)])
def test_the_pause_variable_pauses_a_child_process_at_its_point_only(seconds, slept):
    code = ("import time; from backup_core.testseam import checkpoint; "
            "checkpoint('fill'); t = time.monotonic(); checkpoint('swap', 'b1'); "
            "print(round(time.monotonic() - t, 2))")
    env = {"BACKUP_CORE_TEST_PAUSE": "swap", "BACKUP_CORE_TEST_PAUSE_SECONDS": seconds, "PATH": ""}
    if slept is None:  # an unreadable duration: the default pause; stop it as a kill test would
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stderr.readline() == "BACKUP_CORE_TEST_PAUSE: paused at swap b1\n"
            time.sleep(0.5)
            assert proc.poll() is None  # still paused (30 s by default)
        finally:
            proc.kill()
            proc.wait()
        return
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "BACKUP_CORE_TEST_PAUSE: paused at swap b1\n"  # not at "fill"
    assert float(r.stdout) >= slept


def test_settings_carry_no_test_hooks():
    s = Settings.load(env={"BACKUP_CORE_TEST_PAUSE": "swap"}, secrets={})
    assert not any("pause" in f or "test" in f for f in vars(s))
