"""The root lock (filelock): exclusive across processes and threads, re-entrant within a thread,
released by the kernel when its holder dies; process liveness with psutil."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from backup_core.errors import LockBusy
from backup_core.locks import lock_holder, process_alive, process_start_time, root_lock


def test_reentrant_in_one_thread(root):
    with root_lock(root, "restore", 1):
        with root_lock(root, "backup", 1):
            assert lock_holder(root)["operation"] == "restore"
        assert lock_holder(root) is not None
    assert lock_holder(root) is None


def test_another_thread_waits_then_gives_up_naming_the_holder(root):
    errors = []

    def other():
        try:
            with root_lock(root, "backup", 0.3):
                pass
        except LockBusy as exc:
            errors.append(str(exc))

    with root_lock(root, "restore", 1):
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors and "locked by restore" in errors[0] and f"pid {os.getpid()}" in errors[0]
    with root_lock(root, "backup", 1):  # free again
        pass


@pytest.mark.timeout(60)
def test_a_killed_holder_leaves_no_stale_lock(root):
    code = ("import sys, time; from backup_core.locks import root_lock\n"
            f"with root_lock({str(root)!r}, 'backup', 5):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy, match="locked by backup"):
            with root_lock(root, "restore", 0.3):
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        t0 = time.monotonic()
        with root_lock(root, "restore", 5):
            assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()


def test_process_alive():
    me = os.getpid()
    assert process_alive(me, process_start_time())
    assert not process_alive(me, (process_start_time() or 0) - 1000)  # a recycled pid is another process
    assert not process_alive(2**22 + 11)
    assert not process_alive("123") and not process_alive(None)
    assert process_alive(2**22 + 11, host="another-host")  # only its lease expiry can tell
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(0.5)  # exited, not reaped: a zombie serves nobody
    assert not process_alive(zombie.pid)
    zombie.wait()
