"""Process liveness with psutil (the repository's lock itself: tests/store/test_lock.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from backup_core.locks import process_alive, process_start_time


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
