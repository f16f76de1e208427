"""SchedulerStatus: the scheduler's state and health derived once, from the raw status and the newest backup."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backup_core.scheduler import ScheduleConfig, build_status, status_of

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
ME = ("host-a", 4242)


def raw(**over) -> dict:
    base = {"available": True, "error": None, "active": False, "owner": None, "enabled": True,
            "config": ScheduleConfig(interval_hours=2.0).to_json(), "interval_hours": 2.0, "last_run": None,
            "next_run": None, "next_cleanup": None}
    base.update(over)
    return base


@pytest.mark.parametrize("facts,state", [
    ({"available": False, "error": "no database"}, "unknown"),
    ({"enabled": False}, "off"),
    ({}, "none"),
    ({"active": True, "owner": {"host": "host-a", "pid": 4242}}, "here"),
    ({"active": True, "owner": {"host": "host-b", "pid": 4242}}, "elsewhere"),
    ({"active": True, "owner": {"host": "host-a", "pid": 1}}, "elsewhere"),
])
def test_one_vocabulary_for_who_runs_the_backups(facts, state):
    status = build_status(raw(**facts), last_backup_at=NOW, now=NOW, me=ME)
    assert status.state == state
    assert status.running == (state in ("here", "elsewhere"))


def test_late_means_older_than_twice_the_interval():
    ok = build_status(raw(), last_backup_at=NOW - timedelta(hours=3.9), now=NOW, me=ME)
    assert ok.health == "ok" and ok.problems == []
    late = build_status(raw(), last_backup_at=NOW - timedelta(hours=4, minutes=1), now=NOW, me=ME)
    assert late.health == "late"
    assert late.problems[0].text == "The last backup is 4h 1m old, more than 2 times the 2 h backup interval"
    # switched off: an old backup is expected, not a problem
    off = build_status(raw(enabled=False, config=ScheduleConfig(enabled=False).to_json()),
                       last_backup_at=NOW - timedelta(days=3), now=NOW, me=ME)
    assert off.health == "ok"


def test_a_failed_run_and_no_backup_are_problems_in_that_order():
    failed = {"started_at": "2026-11-24T11:00:00.000Z", "outcome": "error", "trigger": "scheduled",
              "error": "disk full", "backup_id": None}
    status = build_status(raw(last_run=failed), last_backup_at=None, now=NOW, me=ME)
    assert status.health == "failing"
    assert [p.kind for p in status.problems] == ["failing", "no-backup"]
    assert status.problems[0].text == "The last scheduled backup failed: disk full"
    assert status.last_run.failed and status.last_run.started_at == NOW - timedelta(hours=1)


def test_an_unreachable_database_is_unknown_not_an_exception(settings, monkeypatch):
    from dataclasses import replace

    down = replace(settings, uri="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    status = status_of(down, last_backup_at=None)
    assert status.state == "unknown" and status.health == "unknown" and not status.available
    assert status.error and status.problems == []
