"""Notifications (apprise, ``BACKUP_NOTIFY``): one message per failure streak, one on recovery.

A local JSON webhook on 127.0.0.1 receives what apprise's ``json://`` posts.
Failures are real: a backup root locked by a "restore" for longer than the
scheduled backup waits, and a database server that is killed and restarted.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymongo
import pytest

from backup_core import notify, scheduler
from backup_core.config import Settings
from backup_core.store import open_store
from backup_core.scheduler import SchedulerService, run_history, run_scheduled_backup
from backup_core.scheduler import metadb

from .conftest import ROOT, run_cli, wait_for

pytestmark = pytest.mark.timeout(90)


class Receiver:
    """A JSON webhook: records every POST; ``fail_next`` answers that many with HTTP 500."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    receiver.messages.append({"path": self.path, **json.loads(body)})
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, type_: str) -> list[dict]:
        return [m for m in self.messages if m.get("type") == type_]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def notified(settings, receiver):
    return replace(settings, notify_urls=(receiver.url,))


@pytest.fixture
def data(db):
    db["Equipment"].insert_many([{"name": "drill"}, {"name": "saw"}])
    return db


def backups_failed(settings) -> int:
    return sum(1 for h in run_history(settings) if h["kind"] == "backup" and h["outcome"] == "error")


# ---------------------------------------------------------------------------- the scheduler

def test_a_failure_streak_sends_one_message_and_the_recovery_one_more(notified, data, root, receiver, services,
                                                                    monkeypatch):
    good = run_scheduled_backup(notified, trigger="manual")["backup_id"]
    assert receiver.messages == []  # a success with nothing failing tells nothing
    monkeypatch.setattr(scheduler.runs, "BACKUP_LOCK_TIMEOUT", 0.2)
    svc = SchedulerService(notified, interval=timedelta(seconds=1), lease_seconds=2)
    services.append(svc)
    with open_store(root).lock("restore"):  # a long restore: every scheduled backup fails, locked out
        svc.start()
        assert wait_for(lambda: backups_failed(notified) >= 3, 10)
    assert len(receiver.messages) == 1, receiver.messages
    msg = receiver.messages[0]
    assert msg["type"] == "failure" and msg["path"] == "/hook"
    assert msg["title"] == f"[MongoDB backup] Scheduled backup failed: {notified.db_name}"
    body = msg["message"]
    assert "locked by restore" in body and "Failing since: " in body and "(1 failure(s) so far)" in body
    assert f"Last good backup: {good}" in body and str(root.resolve()) in body
    # the lock is free again: the next run works and says so, once
    assert wait_for(lambda: len(receiver.messages) == 2, 6)
    recovery = receiver.messages[1]
    assert recovery["type"] == "success"
    assert recovery["title"] == f"[MongoDB backup] Scheduled backup recovered: {notified.db_name}"
    failures = backups_failed(notified)
    assert f"after {failures} failure(s) since" in recovery["message"]
    assert "locked by restore" in recovery["message"]  # the last error, for the record
    ok_runs = sum(1 for h in run_history(notified) if h["outcome"] == "ok")
    assert wait_for(lambda: sum(1 for h in run_history(notified) if h["outcome"] == "ok") >= ok_runs + 2, 5)
    assert len(receiver.messages) == 2  # later successes say nothing
    streak = next(s for s in notify.streaks(notified) if s["kind"] == "backup")
    assert streak["failing"] is False and streak["last_streak"]["failures"] == failures


def start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "server", "--memory", "--no-seed", "--port",
                             str(port), "--json"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout.readline(), "the embedded server did not start"
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def own_server():
    """A database server of this test alone, which the test may kill and restart on the same port."""
    port = free_port()
    procs = [start_server(port)]

    def restart():
        procs.append(start_server(port))

    yield port, procs, restart
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(10)
    metadb.close_all()  # no cached client keeps calling the dead port for the rest of the session


def test_a_database_outage_is_told_once_and_its_end_once(own_server, tmp_path, receiver, services):
    port, procs, restart = own_server
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    root = tmp_path / "backups"
    root.mkdir()
    settings = Settings(uri=uri, db_name="outage", backup_root=root, user="t", notify_urls=(receiver.url,))
    pymongo.MongoClient(uri)["outage"]["Equipment"].insert_one({"name": "drill"})
    svc = SchedulerService(settings, interval=timedelta(seconds=1), lease_seconds=1.5)
    services.append(svc)
    svc.start()
    assert wait_for(lambda: any(h["outcome"] == "ok" for h in run_history(settings)), 10)
    procs[0].kill()
    procs[0].wait(10)
    down = time.monotonic()
    assert wait_for(lambda: receiver.messages, 15, step=0.1)
    told_after = time.monotonic() - down
    msg = receiver.messages[0]
    assert msg["type"] == "failure" and msg["title"] == "[MongoDB backup] Database failed: outage"
    assert "cannot reach MongoDB" in msg["message"] or "failed" in msg["message"]
    assert "Last good backup: 2" in msg["message"]  # read from the backup root, not the database
    time.sleep(4)  # several more failing renewals and jobs: still one message
    assert len(receiver.messages) == 1, receiver.messages
    restart()  # a memory server: it comes back empty

    def outage():
        return [m for m in receiver.messages if m["title"].startswith("[MongoDB backup] Database ")]

    assert wait_for(lambda: len(outage()) >= 2, 20, step=0.1)
    recovery = outage()[1]
    assert recovery["type"] == "success" and recovery["title"] == "[MongoDB backup] Database recovered: outage"
    assert "Unreachable since:" in recovery["message"]
    assert wait_for(lambda: any(h["outcome"] == "ok" for h in run_history(settings)), 10)  # backups resume
    time.sleep(1.5)
    assert len(outage()) == 2, receiver.messages
    # the backups after the restart found the database empty: that is told too, once
    emptied = [m for m in receiver.messages if m not in outage()]
    assert [m["title"] for m in emptied] == ["[MongoDB backup] Backed-up data needs attention: outage"]
    print(f"\noutage told {told_after:.1f} s after the server died")


# ---------------------------------------------------------------------------- the streak rules

def test_streaks_without_targets_are_kept_and_told_once_targets_exist(settings, db, receiver):
    assert notify.event(settings, "backup", ok=False, error="disk full") is None  # nobody to tell
    assert notify.event(settings, "backup", ok=False, error="disk full") is None
    [streak] = notify.streaks(settings)
    assert (streak["kind"], streak["failing"], streak["failures"], streak["notified"]) == ("backup", True, 2, False)
    told = replace(settings, notify_urls=(receiver.url,))
    result = notify.event(told, "backup", ok=False, error="disk full")  # configured mid-streak: told now
    assert result.sent and result.event == "failure"
    assert "(3 failure(s) so far)" in receiver.messages[0]["message"]
    assert notify.event(told, "backup", ok=False, error="disk full") is None
    assert notify.event(told, "cleanup", ok=True) is None  # another kind: nothing to recover
    assert notify.event(told, "backup", ok=True).event == "recovery"
    assert notify.event(told, "backup", ok=True) is None
    assert [m["type"] for m in receiver.messages] == ["failure", "success"]


def test_hosts_racing_on_one_failure_announce_it_once(settings, db, receiver):
    told = replace(settings, notify_urls=(receiver.url,))
    barrier = threading.Barrier(6)
    results = []

    def fail():
        barrier.wait()
        results.append(notify.event(told, "mirror", ok=False, error="mirror 3 backups behind"))

    threads = [threading.Thread(target=fail) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(1 for r in results if r is not None) == 1
    assert len(receiver.messages) == 1 and receiver.messages[0]["title"].endswith(f"Mirror failed: {db.name}")
    assert "mirror 3 backups behind" in receiver.messages[0]["message"]


def test_an_undelivered_message_is_tried_again_at_the_next_failure(settings, db, receiver):
    told = replace(settings, notify_urls=(receiver.url,))
    receiver.fail_next = 1
    result = notify.event(told, "backup", ok=False, error="boom")
    assert result is not None and not result.sent and receiver.messages == []
    result = notify.event(told, "backup", ok=False, error="boom again")
    assert result.sent and len(receiver.messages) == 1 and "boom again" in receiver.messages[0]["message"]


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00+01:00", "not a time", 12345, None])
def test_a_streak_start_that_is_not_a_time_reads_as_unknown(settings, since):
    # the streak lives in the metadata database, where anyone with write access can put anything
    _, failure = notify._message(settings, "backup", False, {"since": since, "failures": 2}, "boom", {})
    assert "Failing since: unknown (2 failure(s) so far)" in failure
    _, recovery = notify._message(settings, "backup", True, {"since": since, "failures": 2}, None, {})
    assert "after 2 failure(s) since unknown." in recovery


def test_the_secret_parts_of_urls_are_never_shown(settings):
    s = replace(settings, notify_urls=("json://bob:s3cretpw@127.0.0.1:9/hook", "tgram://123456:ABCsecretTOKEN/42",
                                       "nonsense://x"))
    info = notify.describe(s)
    shown = json.dumps(info)
    assert info["configured"] and len(info["targets"]) == 2 and info["invalid"] == ["nonsense://… (not understood by apprise)"]
    assert "s3cretpw" not in shown and "ABCsecretTOKEN" not in shown


# ---------------------------------------------------------------------------- test message, CLI

def test_cli_test_notify(cli_env, receiver):
    r = run_cli({**cli_env, "BACKUP_NOTIFY": f"{receiver.url} , json://127.0.0.1:9/never-there"},
                "scheduler", "--test-notify", "--json")
    assert r.returncode != 0 and "NOT delivered" in r.stderr  # one target is down: said, not hidden
    assert len(receiver.messages) == 1 and receiver.messages[0]["title"].startswith("[MongoDB backup] Test")
    r = run_cli({**cli_env, "BACKUP_NOTIFY": receiver.url}, "scheduler", "--test-notify", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["sent"] is True and out["targets"][0].startswith("json://127.0.0.1:")
    r = run_cli({k: v for k, v in cli_env.items() if k != "BACKUP_NOTIFY"}, "scheduler", "--test-notify")
    assert r.returncode == 2 and "BACKUP_NOTIFY" in r.stderr
