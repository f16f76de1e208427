"""Scheduled archive rules: ``auto`` after each scheduled backup, ``confirm`` waits for an admin."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backup_core import audit
from backup_core.api import BackupSystem
from backup_core.archive import ArchiveRule
from backup_core.errors import UsageError
from backup_core.scheduler import (auto_backup_check, confirm_archive, dismiss_archive, load_config,
                                   pending_archives, prepare_archive, run_history, run_scheduled_backup,
                                   save_archive_rules)
from backup_core.scheduler.metadb import close_all

NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def _no_cached_clients():
    yield
    close_all()


def seed_activity(db):
    """20 activities one every 10 days back (10 are 100 days old or more), 8 bookings one every 100 days
    back (4 ended over 365 days ago)."""
    db["activities"].insert_many([{"_id": i, "at": NOW - timedelta(days=i * 10)} for i in range(20)])
    db["bookings"].insert_many([{"_id": i, "end": NOW - timedelta(days=i * 100)} for i in range(8)])
    return db


@pytest.fixture
def activity(db):
    return seed_activity(db)


def _runs(settings, kind="archive"):
    return [r for r in run_history(settings, 50) if r.get("kind") == kind]


def test_an_auto_rule_archives_after_each_scheduled_backup(settings, activity, store):
    save_archive_rules(settings, [ArchiveRule("activities", "at", 95, "auto")], user="admin")
    entry = run_scheduled_backup(settings)
    assert entry["outcome"] == "ok"
    assert activity["activities"].count_documents({}) == 10 and activity["bookings"].count_documents({}) == 8
    archives = [b for b in store.list_backups() if b.trigger == "archive"]
    assert len(archives) == 1 and archives[0].collection("activities").count == 10
    (run,) = _runs(settings)
    assert run["outcome"] == "ok" and run["backup_id"] == archives[0].backup_id
    assert run["counts"] == {"archived": 10, "deleted": 10, "changed": 0}
    run_scheduled_backup(settings)  # nothing left to archive: no second archive backup
    assert len([b for b in store.list_backups() if b.trigger == "archive"]) == 1
    assert _runs(settings)[0]["outcome"] == "nothing"


def test_a_confirm_rule_waits_for_an_admin(settings, activity, store, root):
    save_archive_rules(settings, [{"collection": "bookings", "field": "end", "older_than_days": 365,
                                   "mode": "confirm"}], user="admin")
    run_scheduled_backup(settings)
    assert activity["bookings"].count_documents({}) == 8  # nothing deleted before the confirmation
    assert not [b for b in store.list_backups() if b.trigger == "archive"]
    (pending,) = pending_archives(settings)
    assert pending.id == "bookings:end" and pending.matching == 4 and pending.state == "pending"
    assert "4 document(s) of bookings with end older than 365 days" in pending.describe()
    cutoff = pending.filter["end"]["$lt"]["$date"]
    with BackupSystem.from_settings(settings) as bs:
        status = bs.status()
    assert [p["id"] for p in status.pending_archives] == ["bookings:end"]
    assert "pending archive bookings:end: 4 document(s) of bookings" in status.to_text()
    run_scheduled_backup(settings)  # a newer preparation replaces the waiting one
    (again,) = pending_archives(settings)
    assert again.prepared_at >= pending.prepared_at and again.filter["end"]["$lt"]["$date"] >= cutoff
    result = confirm_archive(settings, again.id, user="alice")
    assert result.deleted == 4 and activity["bookings"].count_documents({}) == 4
    assert store.get(result.backup_id).trigger == "archive" and pending_archives(settings) == []
    with pytest.raises(UsageError, match="no pending archive"):
        confirm_archive(settings, again.id, user="alice")
    done = next(e for e in audit.read(root, 50) if e["action"] == "archive" and e["outcome"] == "ok")
    assert done["user"] == "alice" and done["deleted"] == 4
    assert _runs(settings)[0]["trigger"] == "confirmed" and _runs(settings)[0]["confirmed_by"] == "alice"


def test_dismissing_drops_it_and_is_audited(settings, activity, root):
    rule = ArchiveRule("bookings", "end", 365, "confirm")
    pending = prepare_archive(settings, rule)
    assert pending is not None and pending.matching == 4
    dropped = dismiss_archive(settings, pending.id, user="bob")
    assert dropped.id == pending.id and pending_archives(settings) == []
    entry = audit.read(root, 1)[0]
    assert entry["action"] == "archive-dismiss" and entry["user"] == "bob" and entry["matching"] == 4
    with pytest.raises(UsageError):
        confirm_archive(settings, pending.id, user="bob")
    with pytest.raises(UsageError, match="invalid pending archive id"):
        dismiss_archive(settings, "../../x", user="bob")
    assert activity["bookings"].count_documents({}) == 8


def test_a_failed_confirmation_waits_again_with_the_error(settings, activity):
    pending = prepare_archive(settings, ArchiveRule("bookings", "end", 365, "confirm"))
    activity.drop_collection("bookings")
    with pytest.raises(UsageError, match="no collection named 'bookings'"):
        confirm_archive(settings, pending.id, user="alice")
    (back,) = pending_archives(settings)
    assert back.state == "pending" and "no collection named" in back.last_error
    assert _runs(settings)[0]["outcome"] == "error"


def test_removing_a_rule_drops_its_pending_archive(settings, activity):
    rules = [ArchiveRule("bookings", "end", 365, "confirm"), ArchiveRule("activities", "at", 95, "confirm")]
    save_archive_rules(settings, rules, user="admin")
    for rule in rules:
        prepare_archive(settings, rule)
    assert sorted(p.id for p in pending_archives(settings)) == ["activities:at", "bookings:end"]
    save_archive_rules(settings, [rules[0]], user="admin")
    assert [p.id for p in pending_archives(settings)] == ["bookings:end"]
    save_archive_rules(settings, [ArchiveRule("bookings", "end", 365, "auto")], user="admin")
    assert pending_archives(settings) == [] and activity["bookings"].count_documents({}) == 8


def test_nothing_matching_leaves_nothing_pending(settings, activity):
    rule = ArchiveRule("bookings", "end", 365, "confirm")
    assert prepare_archive(settings, rule) is not None
    activity["bookings"].delete_many({"end": {"$lt": NOW - timedelta(days=365)}})
    assert prepare_archive(settings, rule) is None and pending_archives(settings) == []


def test_rules_are_validated_with_the_schedule(settings):
    save_archive_rules(settings, [ArchiveRule("activities", "at", 90)], user="admin")
    for bad in ([{"collection": "activities", "field": "$at", "older_than_days": 9}],
                [{"collection": "activities", "field": "at", "older_than_days": 0}],
                "activities"):
        with pytest.raises(UsageError):
            save_archive_rules(settings, bad, user="admin")
    assert load_config(settings).rules() == [ArchiveRule("activities", "at", 90)]


def test_the_api_exposes_the_rules_and_the_pending_archives(mongo_uri, db_name, root, activity):
    with BackupSystem(uri=mongo_uri, db=db_name, root=str(root), user="admin") as bs:
        bs.set_archive_rules([{"collection": "bookings", "field": "end", "older_than_days": 365, "mode": "confirm"}])
        assert bs.archive_rules() == [ArchiveRule("bookings", "end", 365, "confirm")]
        assert bs.pending_archives() == []
        prepare_archive(bs.settings, bs.archive_rules()[0])
        (pending,) = bs.pending_archives()
        assert bs.confirm_archive(pending.id).deleted == 4 and bs.pending_archives() == []


def test_side_backups_do_not_make_a_due_backup_unneeded(settings, data, mongo_uri, db_name, root):
    """A pre-write backup holds part of the data: the auto-backup check still backs up."""
    with BackupSystem(uri=mongo_uri, db=db_name, root=str(root), user="app") as bs:
        with bs.before_write(["Equipment"], reason="upload"):
            pass
    out = auto_backup_check(settings, user="cron")
    assert out["ran"] is True and out["outcome"] == "ok"
    assert auto_backup_check(settings, user="cron")["ran"] is False
