"""``/metrics`` (Prometheus text format) of the scheduler, scraped over HTTP and parsed with prometheus_client."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backup_core import metrics, scheduler
from backup_core.store import open_store
from backup_core.scheduler import SchedulerService, run_history

from .conftest import ROOT, run_cli, wait_for

pytestmark = pytest.mark.timeout(60)


def scrape(url: str) -> dict[str, list]:
    """Every sample by name: [(labels, value), ...]."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict, name: str) -> float:
    [(labels, v)] = samples[name]
    return v


@pytest.fixture
def data(db):
    db["Equipment"].insert_many([{"name": f"item {i}", "qty": i} for i in range(20)])
    return db


@pytest.fixture
def services():
    started: list[SchedulerService] = []
    servers: list = []
    yield started, servers
    for s in servers:
        s.close()
    for svc in started:
        svc.stop(wait=True)


def test_metrics_of_the_active_and_a_standby_scheduler(settings, data, root, services, monkeypatch):
    started, servers = services
    active = SchedulerService(settings, interval=timedelta(seconds=1), lease_seconds=2)
    standby = SchedulerService(settings, interval=timedelta(seconds=1), lease_seconds=2)
    started += [active, standby]
    active.start()
    standby.start()
    servers += [metrics.serve(settings, lambda: active.is_active), metrics.serve(settings, lambda: standby.is_active)]
    assert servers[0].url.startswith("http://127.0.0.1:")  # loopback by default
    assert wait_for(lambda: sum(h["outcome"] == "ok" for h in run_history(settings)) >= 2, 8)
    m = scrape(servers[0].url)
    now = time.time()
    assert value(m, "backup_core_up") == 1 and value(m, "backup_core_lease_held") == 1
    assert m["backup_core_up"][0][0] == {"database": settings.db_name}
    assert now - 5 < value(m, "backup_core_last_success_timestamp_seconds") <= now + 1
    assert value(m, "backup_core_backups_total") >= 2
    assert value(m, "backup_core_backup_failures_total") == 0 and value(m, "backup_core_consecutive_failures") == 0
    assert 0 < value(m, "backup_core_last_run_duration_seconds") < 5
    assert value(m, "backup_core_last_backup_size_bytes") > 100
    assert value(m, "backup_core_backup_interval_seconds") == pytest.approx(1.0)
    assert value(m, "backup_core_next_run_timestamp_seconds") > now - 1
    [(holder, one)] = m["backup_core_lease_holder_info"]
    assert one == 1 and holder["owner"] == active.id and holder["pid"] == str(active.lease.last["pid"])
    assert holder["token"] == "1"
    # the standby reports the same shared facts, and that it does not hold the lease
    s = scrape(servers[1].url)
    assert value(s, "backup_core_lease_held") == 0
    assert s["backup_core_lease_holder_info"][0][0]["owner"] == active.id
    assert value(s, "backup_core_backups_total") >= value(m, "backup_core_backups_total")

    # failures count up, and consecutive failures fall back to 0 after a success
    monkeypatch.setattr(scheduler.runs, "BACKUP_LOCK_TIMEOUT", 0.2)
    with open_store(root).lock("restore"):
        assert wait_for(lambda: value(scrape(servers[0].url), "backup_core_consecutive_failures") >= 2, 8)
    m = scrape(servers[0].url)
    assert value(m, "backup_core_backup_failures_total") >= 2
    assert wait_for(lambda: value(scrape(servers[0].url), "backup_core_consecutive_failures") == 0, 6)
    # status --json says the same under "scheduler" (both stopped, so nothing changes in between)
    standby.stop()
    active.stop()
    r = run_cli({"MONGODB_URI": settings.uri, "MONGODB_DB": settings.db_name, "BACKUP_ROOT": str(root),
                 "PATH": "/usr/bin:/bin"}, "status", "--json")
    assert r.returncode == 0, r.stderr
    sched = json.loads(r.stdout)["scheduler"]
    m = scrape(servers[0].url)
    assert sched["backups_total"] == value(m, "backup_core_backups_total")
    assert sched["failures_total"] == value(m, "backup_core_backup_failures_total")
    assert sched["consecutive_failures"] == value(m, "backup_core_consecutive_failures") == 0
    assert sched["last_success_unix"] == pytest.approx(value(m, "backup_core_last_success_timestamp_seconds"))
    assert sched["last_backup_bytes"] == value(m, "backup_core_last_backup_size_bytes")
    assert sched["last_duration_s"] == pytest.approx(value(m, "backup_core_last_run_duration_seconds"))


def test_drill_gauges_follow_the_last_drills(settings, data, root, services):
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.drill import DrillFailed, drill_backup
    from backup_core.store import LocalStore

    _, servers = services
    servers.append(metrics.serve(settings))
    m = scrape(servers[0].url)
    assert value(m, "backup_core_drill_last_success_timestamp_seconds") == 0  # never
    assert "backup_core_drill_last_result" not in m
    store = LocalStore(root)
    good = create_backup(data, store, BackupOptions()).backup_id
    passed = drill_backup(settings, good)
    m = scrape(servers[0].url)
    now = time.time()
    assert now - 10 < value(m, "backup_core_drill_last_success_timestamp_seconds") <= now + 1
    assert value(m, "backup_core_drill_last_success_duration_seconds") == pytest.approx(passed.duration_s, abs=1e-3)
    assert value(m, "backup_core_drill_last_success_restore_seconds") == pytest.approx(passed.restore_s, abs=1e-3)
    assert value(m, "backup_core_drill_last_result") == 1
    bad = create_backup(data, store, BackupOptions(compress=True)).backup_id
    (store.root / store.get(bad).collection("Equipment").own.location).unlink()
    with pytest.raises(DrillFailed):
        drill_backup(settings, bad)
    m = scrape(servers[0].url)
    assert value(m, "backup_core_drill_last_result") == 0
    # the last success is still the good one
    assert value(m, "backup_core_drill_last_success_restore_seconds") == pytest.approx(passed.restore_s, abs=1e-3)


def test_metrics_without_a_database_say_so(settings, root, services):
    _, servers = services
    dead = settings.__class__(uri="mongodb://127.0.0.1:1/?directConnection=true", db_name=settings.db_name,
                              backup_root=root)
    servers.append(metrics.serve(dead))
    m = scrape(servers[0].url)
    assert value(m, "backup_core_up") == 0 and value(m, "backup_core_lease_held") == 0
    assert "backup_core_last_success_timestamp_seconds" not in m  # unknown, not made up


def test_headless_scheduler_serves_metrics(cli_env, data, tmp_path):
    err = open(tmp_path / "s.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "scheduler", "--every", "2s", "--lease", "2",
                             "--metrics-port", "0"], cwd=ROOT, env=cli_env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = wait_for(lambda: re.search(r"metrics: (http://127\.0\.0\.1:\d+/metrics)",
                                         (tmp_path / "s.err").read_text()), 15)
        assert url, (tmp_path / "s.err").read_text()
        m = wait_for(lambda: (lambda s: s if value(s, "backup_core_backups_total") >= 1 else None)(
            scrape(url.group(1))), 10, step=0.2)
        assert m and value(m, "backup_core_lease_held") == 1
        assert m["backup_core_lease_holder_info"][0][0]["pid"] == str(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_metrics_port_in_use_is_a_clear_error(cli_env, data):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli(cli_env, "scheduler", "--metrics-port", str(port), timeout=30)
    assert r.returncode == 7 and f"cannot serve metrics on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def test_concurrent_scrapes_are_fine(settings, data, services):
    _, servers = services
    servers.append(metrics.serve(settings))
    results = []
    threads = [threading.Thread(target=lambda: results.append(scrape(servers[0].url))) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 5 and all(value(r, "backup_core_up") == 1 for r in results)
