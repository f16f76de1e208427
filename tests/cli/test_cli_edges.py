"""The command line at its edges: closed pipes, negative durations, a URI that is not MongoDB (hole 8)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from backup_core.backup import BackupOptions, create_backup

from tests.conftest import ROOT


def test_list_json_into_a_closed_pipe_is_not_a_traceback(db, store, cli_env):
    db["a"].insert_one({"x": 1})
    for _ in range(3):
        create_backup(db, store, BackupOptions(user="t"))
    proc = subprocess.run(f"'{sys.executable}' -m backup_core list --json | head -c 5", shell=True, cwd=ROOT,
                          env=cli_env, capture_output=True, text=True, timeout=60)
    assert len(proc.stdout) == 5 and proc.stdout.startswith("{")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("args", [
    ("scheduler", "--retention", "-3d"),
    ("cleanup", "--older-than", "-3d"),
    ("scheduler", "--every", "-10m"),
    ("cleanup", "--older-than", "0d"),
])
def test_a_negative_duration_says_so(cli, args):
    proc = cli(*args)
    assert proc.returncode == 2
    assert "must be positive" in proc.stderr and "expected one argument" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def not_mongo():
    """A TCP service on 127.0.0.1 that answers like an HTTP server."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


def test_a_uri_pointing_at_another_service(not_mongo, root):
    env = dict(os.environ, MONGODB_URI=f"mongodb://127.0.0.1:{not_mongo}/?serverSelectionTimeoutMS=2000",
               BACKUP_ROOT=str(root))
    proc = subprocess.run([sys.executable, "-m", "backup_core", "status"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "not as a MongoDB server" in line and "response id" not in line and "Topology" not in line
