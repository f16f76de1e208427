"""The scheduler lease in MongoDB: one active scheduler, take-over, fencing, several "hosts".

Leases and intervals are seconds long. Processes that share nothing but the
MongoDB and the backup root (different working folders and HOMEs) stand in
for hosts. Scheduler subprocesses are always killed in teardown, also when
stopped with SIGSTOP.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest

from backup_core import audit
from backup_core.scheduler import (LeaseLost, MongoLease, SchedulerService, SlotTaken, lease_holder,
                                   run_history, scope_of)
from backup_core.scheduler.metadb import LEASE
from backup_core.store import LocalStore

from .conftest import wait_for

pytestmark = pytest.mark.timeout(60)


def lease_doc(db, settings) -> dict | None:
    return db.client[settings.meta_db][LEASE].find_one({"_id": scope_of(settings).id})


def backup_ids(root) -> list[str]:
    return [b.backup_id for b in LocalStore(root).list_backups()]


def stop_renewing(svc: SchedulerService) -> None:
    """Simulate a paused holder: its lease thread stops (without giving the lease up)."""
    svc._halt.set()
    svc._thread.join(5)
    assert not svc._thread.is_alive()


# ---------------------------------------------------------------------------- the lease document

def test_acquire_renew_release_and_fencing_tokens(settings, db):
    a = MongoLease(settings, "host-a:1:aa", lease_seconds=5)
    b = MongoLease(settings, "host-b:2:bb", lease_seconds=5)
    assert a.acquire() and a.token == 1
    assert not b.acquire() and b.token is None
    assert 4 < b.retry_in <= 5  # the server's view of when a's lease expires
    assert a.acquire() and a.token == 1  # renewing keeps the token
    doc = lease_doc(db, settings)
    assert doc["owner"] == "host-a:1:aa" and doc["database"] == settings.db_name
    assert doc["expires_at"] > doc["renewed_at"]  # the server's clock ($$NOW), not ours
    a.release()
    assert b.acquire() and b.token == 2  # a new holder, a new fencing token
    with pytest.raises(LeaseLost, match="host-b:2:bb .*fencing token 2, ours was 1"):
        a.fence(1)
    with pytest.raises(LeaseLost):
        a.begin_slot(1, min_gap_s=0)
    assert not a.acquire()
    # the slot: one scheduled backup per interval, whoever holds the lease
    b.begin_slot(2, min_gap_s=1.0)
    with pytest.raises(SlotTaken, match="already started"):
        b.begin_slot(2, min_gap_s=1.0)
    b.fence(2, "20260101T000000Z")
    assert lease_doc(db, settings)["slot"]["backup_id"] == "20260101T000000Z"
    assert lease_holder(settings)["owner"] == "host-b:2:bb"


def test_an_expired_lease_is_taken_over_and_its_holder_fenced(settings, db):
    a = MongoLease(settings, "host-a:1:aa", lease_seconds=0.5)
    b = MongoLease(settings, "host-b:2:bb", lease_seconds=0.5)
    assert a.acquire()
    a.begin_slot(a.token, min_gap_s=0)
    assert not b.acquire()
    time.sleep(0.6)  # a stops renewing
    assert lease_holder(settings) is None
    assert b.acquire() and b.token == 2
    with pytest.raises(LeaseLost, match="holds it now"):
        a.fence(1, "20260101T000000Z")  # a's backup may never commit now
    b.begin_slot(2, min_gap_s=0)
    b.fence(2, "20260101T000001Z")


def test_exactly_one_of_many_racing_services_is_active(settings, data, root, services):
    racers = [SchedulerService(settings, interval=timedelta(hours=1), lease_seconds=2) for _ in range(5)]
    services.extend(racers)
    barrier = threading.Barrier(len(racers))

    def start(svc):
        barrier.wait()
        svc.start()

    threads = [threading.Thread(target=start, args=(svc,)) for svc in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for _ in range(4):  # and it stays so over several renewals
        assert sum(svc.is_active for svc in racers) == 1
        time.sleep(0.4)
    active = next(svc for svc in racers if svc.is_active)
    assert lease_holder(settings)["owner"] == active.id
    assert lease_doc(data, settings)["token"] == 1


# ---------------------------------------------------------------------------- services

def test_take_over_within_one_lease_period_after_the_holder_stops_renewing(settings, data, root, services):
    lease = 1.5
    a = SchedulerService(settings, interval=timedelta(hours=1), lease_seconds=lease)
    b = SchedulerService(settings, interval=timedelta(hours=1), lease_seconds=lease)
    services += [a, b]
    a.start()
    b.start()
    assert a.is_active and not b.is_active
    assert wait_for(lambda: backup_ids(root), 5)  # a's first backup (its slot and fence renew the lease too)
    time.sleep(0.2)
    stop_renewing(a)
    last_renewal = lease_doc(data, settings)["renewed_at"]
    stopped = time.monotonic()
    assert wait_for(lambda: b.is_active, lease + 2)
    took = time.monotonic() - stopped
    doc = lease_doc(data, settings)
    assert doc["owner"] == b.id and doc["token"] == 2
    # measured on the server's clock: not before a's lease expired, and right after it
    gap = (doc["since"] - last_renewal).total_seconds()
    print(f"\ntake-over {gap:.3f} s after the last renewal (lease {lease} s); {took:.3f} s after the stop")
    assert lease <= gap <= lease + 0.3, gap
    assert took <= lease + 0.3, took


def test_a_paused_holder_never_commits_a_second_backup_for_the_slot(settings, data, root, services,
                                                                   monkeypatch):
    # a's first backup stops half-way (as a paused process would); b's go through
    reached, go = threading.Event(), threading.Event()
    from backup_core.store.writer import BackupWriter

    real_write = BackupWriter.write_spilled
    calls = [0]

    def gated_write(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 1:
            reached.set()
            go.wait(30)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(BackupWriter, "write_spilled", gated_write)
    a = SchedulerService(settings, interval=timedelta(seconds=2), lease_seconds=1.5)
    services.append(a)
    a.start()
    assert reached.wait(10)  # a is writing its backup now ...
    stop_renewing(a)         # ... and stops renewing: "paused"
    b = SchedulerService(settings, interval=timedelta(seconds=2), lease_seconds=1.5)
    services.append(b)
    b.start()
    assert wait_for(lambda: b.is_active, 5)
    # b's backup of the next slot starts, then waits for the root lock that the paused a still holds
    assert wait_for(lambda: len(backup_starts(root)) == 2, 8)
    assert backup_ids(root) == []
    go.set()  # a resumes, reaches its commit ... and the fence refuses it; then b's backup goes on
    skipped = wait_for(lambda: [h for h in run_history(settings) if "lease lost" in (h.get("error") or "")], 8)
    assert skipped and skipped[0]["outcome"] == "skipped"
    assert "holds it now (fencing token 2, ours was 1)" in skipped[0]["error"]
    aborted = skipped[0]["aborted_backup_id"]
    assert aborted and wait_for(lambda: backup_ids(root), 8)
    time.sleep(0.5)
    # a's backup never appeared, nothing half-written is left, and it was a refusal, not a failure
    assert aborted not in backup_ids(root)
    assert all(h["outcome"] in ("ok", "skipped") for h in run_history(settings))
    refused = [e for e in audit.read(root, limit=None) if e["action"] == "backup" and e["outcome"] == "refused"]
    assert len(refused) == 1 and "lease lost" in refused[0]["error"]
    assert not list(root.glob("*/.tmp-*"))
    times = sorted(b.created for b in LocalStore(root).list_backups())
    assert all((y - x).total_seconds() > 1.5 for x, y in zip(times, times[1:])), times


def backup_starts(root) -> list[dict]:
    return [e for e in audit.read(root, limit=None) if e["action"] == "backup" and e["outcome"] == "started"]


# ---------------------------------------------------------------------------- processes as hosts

def host_env(cli_env, tmp_path, name: str, **extra) -> tuple[dict, str]:
    """An environment of a separate "host": its own working folder and HOME, shared MongoDB and root."""
    home = tmp_path / f"{name}-home"
    work = tmp_path / f"{name}-work"
    home.mkdir()
    work.mkdir()
    env = {k: v for k, v in cli_env.items() if not k.startswith("BACKUP_CORE_TEST_PAUSE")}
    env.update(HOME=str(home), PWD=str(work), BACKUP_SECRETS_FILE=str(work / "secrets.toml"), **extra)
    return env, str(work)


def spawn(env, cwd, tmp_path, name, *args) -> subprocess.Popen:
    err = open(tmp_path / f"{name}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "backup_core", "scheduler", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)


def test_two_hosts_sharing_only_mongodb_and_the_root_make_one_backup_per_interval(
        cli_env, settings, data, root, procs, tmp_path):
    envs = [host_env(cli_env, tmp_path, name) for name in ("a", "b")]
    procs += [spawn(env, cwd, tmp_path, name, "--every", "2s", "--lease", "2")
              for (env, cwd), name in zip(envs, ("a", "b"))]
    assert wait_for(lambda: len(backup_ids(root)) >= 3, 20, step=0.2)
    times = sorted(b.created for b in LocalStore(root).list_backups())
    assert all((y - x).total_seconds() > 1.5 for x, y in zip(times, times[1:])), times
    holder = lease_holder(settings)
    assert holder["pid"] in (procs[0].pid, procs[1].pid) and holder["token"] == 1
    standby = "b" if holder["pid"] == procs[0].pid else "a"
    assert "scheduler standby" in (tmp_path / f"{standby}.err").read_text()
    # nothing coordinated through files: no lease or config in the root, nothing in the working folders
    assert not (root / ".scheduler").exists()
    for _env, cwd in envs:
        assert os.listdir(cwd) == []
    assert all(h["outcome"] == "ok" for h in run_history(settings))


def test_a_holder_stopped_with_sigstop_before_its_commit_never_commits(cli_env, settings, data, root, procs,
                                                                       tmp_path):
    env_a, cwd_a = host_env(cli_env, tmp_path, "a", BACKUP_CORE_TEST_PAUSE="scheduler-commit",
                            BACKUP_CORE_TEST_PAUSE_SECONDS="1")
    a = spawn(env_a, cwd_a, tmp_path, "a", "--every", "3s", "--lease", "2")
    procs.append(a)
    marker = "paused at scheduler-commit "
    line = wait_for(lambda: next((ln for ln in (tmp_path / "a.err").read_text().splitlines() if marker in ln),
                                 None), 20, step=0.01)
    assert line, (tmp_path / "a.err").read_text()
    a.send_signal(signal.SIGSTOP)  # frozen with a complete backup written, right before its fence
    a_backup = line.split(marker, 1)[1].strip()
    env_b, cwd_b = host_env(cli_env, tmp_path, "b")
    b = spawn(env_b, cwd_b, tmp_path, "b", "--every", "3s", "--lease", "2")
    procs.append(b)
    assert wait_for(lambda: (lease_holder(settings) or {}).get("pid") == b.pid, 15, step=0.1)
    # b's backup of the next slot starts and waits for the root lock, which the frozen a holds
    assert wait_for(lambda: any(e.get("pid") == b.pid for e in backup_starts(root)), 10, step=0.1)
    a.send_signal(signal.SIGCONT)
    lost = wait_for(lambda: [h for h in run_history(settings) if h.get("pid") == a.pid
                             and "lease lost" in (h.get("error") or "")], 10, step=0.1)
    assert lost and lost[0]["outcome"] == "skipped", (tmp_path / "a.err").read_text()
    assert lost[0]["aborted_backup_id"] == a_backup
    assert wait_for(lambda: backup_ids(root), 10, step=0.1)  # then b's backup commits
    assert wait_for(lambda: "standing by" in (tmp_path / "a.err").read_text()
                    or "scheduler standby" in (tmp_path / "a.err").read_text(), 5)
    time.sleep(0.5)
    assert a_backup not in backup_ids(root)  # the frozen holder's backup never became visible
    assert not list(root.glob(f"*/.tmp-{a_backup}-*"))
    assert all(h["outcome"] in ("ok", "skipped") for h in run_history(settings))
    assert (lease_holder(settings) or {}).get("pid") == b.pid
