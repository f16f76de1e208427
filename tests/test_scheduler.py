"""The scheduler: interval backups, one active scheduler per root, take-over, clean-up, state.

Intervals and leases are seconds long here so the whole file runs in well
under a minute and a half. Scheduler subprocesses are always killed in teardown.
The lease itself (fencing, take-over timing, paused holders, several "hosts")
is tested in tests/test_lease.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from backup_core import audit, scheduler
from backup_core.backup import BackupOptions, create_backup
from backup_core.config import Settings
from backup_core.errors import UsageError
from backup_core.retention import cleanup
from backup_core.scheduler import (ScheduleConfig, SchedulerService, auto_backup_check, ensure_scheduler,
                                   lease_holder, load_config, run_cleanup_now, run_history,
                                   run_scheduled_backup, save_config, scheduler_status, scope_of)
from backup_core.scheduler.metadb import CONFIG, HISTORY
from backup_core.store import LocalStore, open_store

from .conftest import ROOT, wait_for


def spawn_scheduler(env, tmp_path, name, *args):
    err = open(tmp_path / f"{name}.err", "w")
    return subprocess.Popen([sys.executable, "-m", "backup_core", "scheduler", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err)


def created_times(root) -> list[datetime]:
    return sorted(b.created for b in LocalStore(root).list_backups())


def min_gap(times: list[datetime]) -> float:
    return min(((b - a).total_seconds() for a, b in zip(times, times[1:])), default=float("inf"))


# ---------------------------------------------------------------------------- configuration

def test_config_defaults_roundtrip_and_validation(settings, db, root):
    assert load_config(settings) == ScheduleConfig(1.0, 7.0, None, True)
    saved = save_config(settings, ScheduleConfig(interval_hours=0.5, retention_days=3, max_root_bytes=10_000),
                        user="alice")
    assert load_config(settings) == saved == ScheduleConfig(0.5, 3.0, 10_000, True)
    for bad in (ScheduleConfig(interval_hours=0.05), ScheduleConfig(interval_hours=169),
                ScheduleConfig(retention_days=0), ScheduleConfig(max_root_bytes=-1),
                ScheduleConfig(drill_every_days=-1), ScheduleConfig(drill_every_days=float("nan")),
                ScheduleConfig(drill_every_days="weekly")):
        with pytest.raises(UsageError):
            save_config(settings, bad)
    assert load_config(settings).interval_hours == 0.5  # a refused change leaves the saved one
    # kept in the metadata database, one document per backup root and database; nothing in the root
    doc = db.client[settings.meta_db][CONFIG].find_one({"_id": scope_of(settings).id})
    assert doc["interval_hours"] == 0.5 and doc["root"] == str(root.resolve()) and doc["updated_by"] == "alice"
    assert not (root / ".scheduler").exists()
    # a different working folder names the same root by its absolute path: the same schedule
    other = Settings(uri=settings.uri, db_name=settings.db_name, backup_root=root / ".." / root.name)
    assert load_config(other).interval_hours == 0.5
    entry = audit.read(root, limit=1)[0]
    assert entry["action"] == "scheduler-config" and entry["user"] == "alice"
    assert entry["interval_hours"] == 0.5


def test_interval_survives_restart_of_every_process(cli, settings, db, root):
    r = cli("scheduler", "--set-interval", "2.5", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["interval_hours"] == 2.5
    # a different process reads it back, and so does this one
    r = cli("status", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["scheduler"]["interval_hours"] == 2.5
    assert load_config(settings).interval_hours == 2.5
    r = cli("scheduler", "--set-interval", "500", "--json")
    assert r.returncode == 2 and "between 0.1 and 168" in r.stderr
    r = cli("scheduler", "--retention", "3d", "--max-root-mb", "50", "--json")
    assert r.returncode == 0, r.stderr
    assert load_config(settings) == ScheduleConfig(2.5, 3.0, 50 * 1024 * 1024, True)
    for bad in (["--max-root-mb", "-1"], ["--max-root-mb", "nan"], ["--retention", "soon"]):
        r = cli("scheduler", *bad, "--json")
        assert r.returncode == 2 and r.stderr.strip() and "Traceback" not in r.stderr, bad
    assert load_config(settings) == ScheduleConfig(2.5, 3.0, 50 * 1024 * 1024, True)


# ---------------------------------------------------------------------------- single runs

def test_auto_backup_check_skips_when_recent(settings, data, root):
    first = auto_backup_check(settings, user="alice")
    assert first["ran"] and first["backup_id"]
    again = auto_backup_check(settings, user="alice")
    assert again == {"ran": False, "backup_id": None, "last_backup_id": first["backup_id"],
                     "message": again["message"]}
    assert again["message"].startswith(f"backup not needed: last backup {first['backup_id']}")
    assert "newer than the interval" in again["message"]
    assert len(LocalStore(root).list_backups()) == 1
    assert run_history(settings)[0]["trigger"] == "check"


def test_failed_backup_is_recorded_and_visible(settings, data, root, monkeypatch):
    # a real failure: a restore holds the root lock longer than the scheduled backup waits
    monkeypatch.setattr(scheduler.runs, "BACKUP_LOCK_TIMEOUT", 0.3)
    out = {}
    with open_store(root).lock("restore"):
        t = threading.Thread(target=lambda: out.setdefault("entry", run_scheduled_backup(settings)))
        t.start()
        t.join(10)
    entry = out["entry"]  # recorded, not raised
    assert entry["outcome"] == "error" and "locked by restore" in entry["error"]
    status = scheduler_status(settings)
    assert status["last_result"]["outcome"] == "error" and "locked" in status["last_result"]["error"]
    assert status["last_run"]["trigger"] == "scheduled"
    assert (status["failures_total"], status["consecutive_failures"], status["backups_total"]) == (1, 1, 0)
    # audited too: a busy root refuses the backup before anything is written
    failed = [e for e in audit.read(root) if e["action"] == "backup" and e["outcome"] == "refused"]
    assert len(failed) == 1 and "locked by restore" in failed[0]["error"]
    assert any(e["op"] == failed[0]["op"] and e["outcome"] == "started" for e in audit.read(root))

    monkeypatch.undo()  # the next run retries and succeeds
    entry = run_scheduled_backup(settings)
    assert entry["outcome"] == "ok" and entry["counts"] == {"Equipment": 2, "Equipment_select_options": 1}
    hist = run_history(settings)
    assert [h["outcome"] for h in hist] == ["ok", "error"]
    assert set(hist[0]) >= {"started_at", "duration_s", "trigger", "outcome", "backup_id", "counts", "error",
                            "host", "pid"}
    status = scheduler_status(settings)
    assert (status["failures_total"], status["consecutive_failures"], status["backups_total"]) == (1, 0, 1)
    assert status["last_backup_id"] == entry["backup_id"] and status["last_backup_bytes"] == entry["bytes"] > 0
    assert status["last_success_unix"] == pytest.approx(time.time(), abs=30)
    assert LocalStore(root).get(entry["backup_id"]).trigger == "scheduled"


# ---------------------------------------------------------------------------- clean-up

def test_cleanup_deletes_exactly_the_expired_never_newest_nor_young_safety(settings, data, db, store):
    def make(trigger):
        return create_backup(db, store, BackupOptions(trigger=trigger, user="t")).backup_id
    old1, old2 = make("scheduled"), make("manual")
    time.sleep(1.1)
    safety, newest = make("safety"), make("scheduled")
    created = {b.backup_id: b.created for b in store.list_backups()}
    # retention 1 s, "now" half a second after the safety backup: only the two older ones expired
    now = created[safety] + timedelta(seconds=0.5)
    dry = cleanup(store, timedelta(seconds=1), dry_run=True, now=now)
    assert sorted(dry.deleted) == sorted([old1, old2]) and len(store.list_backups()) == 4
    result = cleanup(store, timedelta(seconds=1), now=now, user="t")
    assert sorted(result.deleted) == sorted([old1, old2])
    assert [b.backup_id for b in store.list_backups()] == [newest, safety]
    # far in the future everything is expired, yet the newest backup stays, and so does the newest
    # safety backup (the undo of the latest restore: retention.RetentionPolicy)
    result = cleanup(store, timedelta(days=7), now=datetime.now(timezone.utc) + timedelta(days=30))
    assert result.deleted == []
    assert [b.backup_id for b in store.list_backups()] == [newest, safety]


def test_size_triggered_cleanup_after_backup_and_cleanup_now(settings, data, root):
    # retention of about 0.9 s; the root is always "too big" at 1 byte
    save_config(settings, ScheduleConfig(interval_hours=1, retention_days=1e-5, max_root_bytes=1))
    first = run_scheduled_backup(settings)["backup_id"]
    time.sleep(1.0)
    second = run_scheduled_backup(settings)["backup_id"]
    assert [b.backup_id for b in LocalStore(root).list_backups()] == [second]
    size_run = run_history(settings)[0]
    assert size_run["kind"] == "cleanup" and size_run["trigger"] == "size" and size_run["deleted"] == [first]
    assert run_cleanup_now(settings, user="alice").deleted == []  # never the newest
    assert scheduler_status(settings)["last_result"]["backup_id"] == second  # clean-ups are not backup results


# ---------------------------------------------------------------------------- the service, in process

def test_service_backs_up_on_schedule_and_reports_state(settings, data, root, services):
    svc = SchedulerService(settings, interval=timedelta(seconds=1), lease_seconds=2)
    services.append(svc)
    svc.start()
    assert svc.is_active
    status = scheduler_status(settings)
    assert status["active"] and status["owner"]["pid"] == os.getpid() and status["owner"]["token"] == 1
    assert status["interval_hours"] == pytest.approx(1 / 3600)
    assert wait_for(lambda: len(LocalStore(root).list_backups()) >= 3, 6)
    times = created_times(root)
    assert min_gap(times) > 0.7  # one per interval, not bursts
    status = scheduler_status(settings)
    assert status["next_run"] and status["last_run"]["outcome"] == "ok"
    assert status["next_cleanup"]  # the weekly job is scheduled about a week ahead... or soon at first start
    svc.stop()
    assert not scheduler_status(settings)["active"] and scheduler_status(settings)["next_run"] is None
    events = [e.get("event") for e in audit.read(root, limit=None) if e["action"] == "scheduler"]
    assert events[:2] == ["stopped", "active"]


def test_overlapping_run_is_not_started_twice(settings, data, root, services, monkeypatch):
    running, peak, calls = [0], [0], [0]
    guard = threading.Lock()
    real = scheduler.runs.create_backup

    def slow_backup(*a, **kw):
        with guard:
            running[0] += 1
            calls[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(2.5)  # longer than two intervals
            return real(*a, **kw)
        finally:
            with guard:
                running[0] -= 1
    monkeypatch.setattr(scheduler.runs, "create_backup", slow_backup)
    svc = SchedulerService(settings, interval=timedelta(seconds=1), lease_seconds=2)
    services.append(svc)
    svc.start()
    time.sleep(4.5)
    svc.stop(wait=True)  # waits for the running backup
    assert peak[0] == 1
    assert calls[0] == 2
    outcomes = [h["outcome"] for h in run_history(settings) if h["kind"] == "backup"]
    assert outcomes.count("ok") == 2 and "skipped" in outcomes
    assert len(LocalStore(root).list_backups()) == 2


def test_ensure_scheduler_is_idempotent_and_a_standby_takes_over(settings, data, root, services):
    svc = ensure_scheduler(settings)
    services.append(svc)
    assert ensure_scheduler(settings) is svc and svc.is_active
    # a second service for the same root (as another process would be) stands by
    other = SchedulerService(settings, lease_seconds=1.5)
    services.append(other)
    other.start()
    assert not other.is_active
    time.sleep(1.0)
    assert not other.is_active and lease_holder(settings)["owner"] == svc.id
    svc.stop(wait=True)  # releases the lease: the standby takes over at its next check
    assert wait_for(lambda: other.is_active, 2.0)
    assert lease_holder(settings)["owner"] == other.id
    assert ensure_scheduler(settings) is not svc  # a stopped service is replaced
    services.append(ensure_scheduler(settings))


def test_config_change_reschedules_the_active_scheduler(settings, data, root, services):
    save_config(settings, ScheduleConfig(interval_hours=2))
    svc = SchedulerService(settings, lease_seconds=1.5)
    services.append(svc)
    svc.start()
    assert wait_for(lambda: len(LocalStore(root).list_backups()) == 1, 5)  # no backup yet: one at once
    assert wait_for(lambda: svc.next_run() and
                    svc.next_run() > datetime.now(timezone.utc) + timedelta(hours=1.9), 3)
    save_config(settings, ScheduleConfig(interval_hours=0.5))
    newest = LocalStore(root).list_backups()[0].created
    assert wait_for(lambda: abs((svc.next_run() - (newest + timedelta(hours=0.5))).total_seconds()) < 2, 3)
    status = scheduler_status(settings)
    assert status["interval_hours"] == 0.5
    assert abs((datetime.fromisoformat(status["next_run"].replace("Z", "+00:00"))
                - (newest + timedelta(hours=0.5))).total_seconds()) < 2
    save_config(settings, ScheduleConfig(interval_hours=0.5, enabled=False))
    assert wait_for(lambda: svc.next_run() is None, 3)


def test_the_active_scheduler_drills_on_its_period_and_stops_when_switched_off(settings, data, root, services):
    create_backup(data, LocalStore(root), BackupOptions(trigger="manual"))
    # no interval backup during the test (the last one is recent), a drill every 1.5 s
    save_config(settings, ScheduleConfig(interval_hours=168, drill_every_days=1.5 / 86400))
    svc = SchedulerService(settings, lease_seconds=3)
    services.append(svc)
    svc.start()
    assert wait_for(lambda: len(run_history(settings, kind="drill")) >= 2, 20)
    assert all(h["outcome"] == "ok" and h["trigger"] == "scheduled" for h in run_history(settings, kind="drill"))
    assert scheduler_status(settings)["next_drill"] is not None
    assert [h["kind"] for h in run_history(settings)].count("backup") == 0
    save_config(settings, ScheduleConfig(interval_hours=168, drill_every_days=0))
    svc.reload()
    assert wait_for(lambda: scheduler_status(settings)["next_drill"] is None, 5)
    drills = len(run_history(settings, kind="drill"))
    time.sleep(3.5)
    assert len(run_history(settings, kind="drill")) <= drills + 1  # (one may have been running)


def test_reload_config_applies_a_saved_interval_at_once(settings, data, root, services, monkeypatch):
    from backup_core.scheduler import reload_config, service

    # the next lease renewal is minutes away: only reload_config can apply the change now
    svc = SchedulerService(settings, lease_seconds=600)
    monkeypatch.setattr(service, "_registry", {(LocalStore(root).url, settings.db_name): svc})
    services.append(svc.start())
    assert wait_for(lambda: svc.is_active and len(LocalStore(root).list_backups()) == 1, 5)
    save_config(settings, ScheduleConfig(interval_hours=6))
    assert scheduler_status(settings)["interval_hours"] == 1.0  # saved, not yet applied
    assert reload_config(settings) is True
    status = scheduler_status(settings)
    assert status["interval_hours"] == status["configured_interval_hours"] == 6.0
    newest = LocalStore(root).list_backups()[0].created
    assert abs((svc.next_run() - (newest + timedelta(hours=6))).total_seconds()) < 2
    svc.stop(wait=True)
    assert reload_config(settings) is False  # no active scheduler here: the one elsewhere applies it


# ---------------------------------------------------------------------------- processes

def test_two_processes_one_backup_per_interval_and_sigkill_takeover(cli_env, settings, data, root, procs,
                                                                    tmp_path):
    a = spawn_scheduler(cli_env, tmp_path, "a", "--every", "2s", "--lease", "2")
    b = spawn_scheduler(cli_env, tmp_path, "b", "--every", "2s", "--lease", "2")
    procs += [a, b]
    holder = wait_for(lambda: lease_holder(settings), 15)
    assert holder and holder["pid"] in (a.pid, b.pid)
    assert wait_for(lambda: len(LocalStore(root).list_backups()) >= 3, 12)
    times = created_times(root)
    assert min_gap(times) > 1.5, times  # not two per interval
    active = a if holder["pid"] == a.pid else b
    standby = b if active is a else a
    assert lease_holder(settings)["pid"] == active.pid
    err = (tmp_path / ("b.err" if standby is b else "a.err")).read_text()
    assert "standby" in err

    before = len(LocalStore(root).list_backups())
    active.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    active.wait(5)
    new_holder = wait_for(lambda: (lease_holder(settings) or {}).get("pid") == standby.pid, 4, step=0.05)
    assert new_holder, lease_holder(settings)
    assert time.monotonic() - killed_at <= 2.5  # within one lease period (plus polling)
    assert wait_for(lambda: len(LocalStore(root).list_backups()) >= before + 2, 8)
    times = created_times(root)
    assert min_gap(times) > 1.5, times  # the take-over continued the cadence, no double backup

    # SIGTERM: a clean stop that gives the lease up
    standby.send_signal(signal.SIGTERM)
    assert standby.wait(15) == 0
    assert lease_holder(settings) is None
    assert "scheduler stopped" in (tmp_path / ("b.err" if standby is b else "a.err")).read_text()
    assert not list(root.glob("*/.tmp-*"))  # no half backup left visible or behind
    history = run_history(settings, limit=100)
    assert all(h["outcome"] in ("ok", "skipped") for h in history)


def test_history_is_trimmed_and_read_newest_first(settings, db, monkeypatch):
    monkeypatch.setattr(scheduler.history, "HISTORY_KEEP", 5)
    start = datetime.now(timezone.utc)
    for i in range(40):
        scheduler.append_history(settings, scheduler.history_entry(
            "backup", "scheduled", start + timedelta(seconds=i), 0.1, "ok", n=i))
    ns = [h["n"] for h in run_history(settings, limit=100)]
    assert ns[0] == 39 and ns == sorted(ns, reverse=True) and 5 <= len(ns) <= 6
    assert [h["n"] for h in run_history(settings, limit=3)] == [39, 38, 37]
    assert scheduler_status(settings)["backups_total"] == 40  # the counters are not trimmed


def test_ensure_scheduler_can_be_switched_off(settings, root, monkeypatch):
    monkeypatch.setenv("BACKUP_SCHEDULER", "off")
    # the environment is read by Settings.load, as every entry point does
    settings = Settings.load(uri=settings.uri, db=settings.db_name, root=root, data_dir=settings.data_dir,
                             secrets={})
    assert not settings.scheduler_enabled
    svc = ensure_scheduler(settings)
    assert ensure_scheduler(settings) is svc and not svc.running and not svc.is_active
    assert lease_holder(settings) is None


# ---------------------------------------------------------------------------- the old files

def test_legacy_config_and_history_are_imported_once(settings, db, root):
    legacy = root / ".scheduler"
    legacy.mkdir()
    (legacy / "config.json").write_text(json.dumps({"interval_hours": 6, "retention_days": 14,
                                                    "max_root_bytes": None, "enabled": False}))
    (legacy / "history.jsonl").write_text("".join(json.dumps(scheduler.history_entry(
        "backup", "scheduled", datetime(2026, 1, 1, i, tzinfo=timezone.utc), 1.0, "ok", backup_id=f"b{i}")) + "\n"
        for i in range(3)) + "torn line\n")
    assert load_config(settings) == ScheduleConfig(6.0, 14.0, None, False)
    assert not (legacy / "config.json").exists() and (legacy / "config.json.migrated").exists()
    assert [h["backup_id"] for h in run_history(settings)] == ["b2", "b1", "b0"]
    # once: a config.json put back later is not read again, the stored schedule wins
    (legacy / "config.json").write_text(json.dumps({"interval_hours": 1}))
    save_config(settings, ScheduleConfig(interval_hours=3))
    assert load_config(settings).interval_hours == 3.0
    assert db.client[settings.meta_db][HISTORY].count_documents({}) == 3
    entry = next(e for e in audit.read(root) if e.get("migrated_from"))
    assert entry["action"] == "scheduler-config" and entry["history_runs"] == 3


# ---------------------------------------------------------------------------- consistency (replica sets)

def test_a_standalone_backup_says_it_is_not_point_in_time(settings, data, root, cli):
    entry = run_scheduled_backup(settings)
    assert entry["outcome"] == "ok" and entry["point_in_time"] is False
    consistency = LocalStore(root).get(entry["backup_id"]).manifest.data["consistency"]
    assert consistency["point_in_time"] is False and consistency["cluster_time"] is None
    assert consistency["topology"] == "Single" and consistency["read_preference"] == "secondaryPreferred"
    assert consistency["reason"].startswith("standalone server: no snapshot reads")
    r = cli("backup", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["point_in_time"] is False and out["consistency"]["reason"].startswith("standalone server")
    # said once by status (and in every backup's JSON), not after every backup's text
    assert "NOT point-in-time consistent: standalone server" in cli("status").stdout


def test_backup_reads_pick_snapshots_and_read_preferences_by_topology(data, monkeypatch):
    """The replica-set branch, against a stand-in for the driver's topology (no replica set here)."""
    from types import SimpleNamespace

    from bson.timestamp import Timestamp

    from backup_core import mongoutil

    class Session:
        def __init__(self):
            self._snapshot_time = Timestamp(1_800_000_000, 7)  # what pymongo keeps after the first read
            self.operation_time = None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class Client:  # weak-referenceable, as a MongoClient is
        def __init__(self, topology: str, wire: int):
            servers = [SimpleNamespace(max_wire_version=wire)]
            self.topology_description = SimpleNamespace(topology_type_name=topology, known_servers=servers)

        def start_session(self, snapshot):
            assert snapshot is True
            return Session()

    fake_client = Client

    class View:
        def __init__(self, client):
            self.client = client
            self.read_preference = None

        def with_options(self, read_preference):
            self.read_preference = read_preference
            return self

    rs = View(fake_client("ReplicaSetWithPrimary", 17))
    mongoutil.set_backup_read_preference(rs.client, "nearest")
    with mongoutil.backup_reads(rs) as reads:
        assert reads.session is not None and reads.read_preference == "nearest"
        assert type(reads.db.read_preference).__name__ == "Nearest"
        assert reads.consistency() == {"point_in_time": True, "cluster_time": {"t": 1_800_000_000, "i": 7},
                                       "topology": "ReplicaSetWithPrimary", "read_preference": "nearest",
                                       "reason": None}
    with mongoutil.backup_reads(rs, primary=True) as reads:  # a restore's safety backup
        assert reads.read_preference == "primary"
    old = View(fake_client("Sharded", 8))  # MongoDB 4.0: no snapshot reads outside transactions
    with mongoutil.backup_reads(old) as reads:
        assert reads.session is None and reads.read_preference == "secondaryPreferred"
        assert reads.consistency()["reason"] == "MongoDB older than 5.0: no snapshot reads"


def test_weekly_cleanup_is_a_week_after_the_first_start_not_after_every_start(settings, data, root, services):
    week = timedelta(days=7)
    started = datetime.now(timezone.utc)
    for _ in range(2):  # a dashboard started, stopped and started again
        svc = SchedulerService(settings, interval=timedelta(hours=1), lease_seconds=2)
        services.append(svc)
        svc.start()
        assert svc.is_active
        job = svc._scheduler.get_job(scheduler.CLEANUP_JOB_ID)
        assert job.next_run_time >= started + week - timedelta(seconds=5), job.next_run_time
        assert job.next_run_time <= started + week + timedelta(seconds=30)
        svc.stop()
    # once a clean-up ran, the next one is a full period after it
    scheduler.append_history(settings, scheduler.history_entry("cleanup", "weekly", started - timedelta(days=2),
                                                                0.1, "ok"))
    svc = SchedulerService(settings, interval=timedelta(hours=1), lease_seconds=2)
    services.append(svc)
    svc.start()
    due = svc._scheduler.get_job(scheduler.CLEANUP_JOB_ID).next_run_time
    assert abs((due - (started + timedelta(days=5))).total_seconds()) < 5
