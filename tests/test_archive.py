"""archive.py: back up the matching documents, verify, delete exactly those; merge-restore brings them back."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from bson import ObjectId

from backup_core import archive as archive_mod
from backup_core.archive import ArchiveOptions, ArchiveRule, archive_documents, check_rules
from backup_core.errors import IntegrityError, RestoreRefused, UsageError
from backup_core.mongoutil import raw_collection
from backup_core.query import FilterError
from backup_core.restore import RestoreOptions, restore_backup

NOW = datetime(2026, 6, 1)
OLD = {"at": {"$lt": NOW - timedelta(days=90)}}


def live(db, name="activities") -> list[bytes]:
    return [bytes(d.raw) for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


@pytest.fixture
def activities(db):
    db["activities"].insert_many([{"_id": i, "kind": "login", "at": NOW - timedelta(days=i), "n": {"x": [i]}}
                                  for i in range(150)])
    db["users"].insert_one({"name": "ann"})
    return db


def options(**kw) -> ArchiveOptions:
    return ArchiveOptions("activities", kw.pop("filter", OLD), confirmed=kw.pop("confirmed", True), user="tester",
                          **kw)


def test_archive_backs_up_verifies_and_deletes_exactly_the_matching_documents(activities, store):
    before = live(activities)
    result = archive_documents(activities, store, options())
    assert (result.archived, result.deleted, result.changed) == (59, 59, 0)
    info = store.get(result.backup_id)
    assert info.trigger == "archive" and list(info.collections) == ["activities"]
    assert info.manifest.get("filter") == {"collection": "activities",
                                           "query": {"at": {"$lt": {"$date": "2026-03-03T00:00:00.000Z"}}}}
    assert store.verify(result.backup_id).ok
    kept = live(activities)
    assert len(kept) == 91 and activities["activities"].count_documents(OLD) == 0
    assert sorted(list(store.iter_documents(info, "activities")) + kept) == sorted(before)
    assert activities["users"].count_documents({}) == 1  # other collections are never touched


def test_documents_that_start_matching_or_change_after_the_backup_are_not_deleted(activities, store, monkeypatch):
    """Between the backup and the delete: new matching documents stay; a changed one stays (``changed``)."""
    verified = store.require_verified

    def meanwhile(backup_id, collections=None):
        activities["activities"].insert_many([{"_id": 1000 + i, "at": NOW - timedelta(days=400)} for i in range(3)])
        activities["activities"].update_one({"_id": 120}, {"$set": {"kind": "edited"}})  # archived, then changed
        activities["activities"].update_one({"_id": 1}, {"$set": {"at": NOW - timedelta(days=300)}})  # now matches
        return verified(backup_id, collections)

    monkeypatch.setattr(store, "require_verified", meanwhile)
    result = archive_documents(activities, store, options())
    assert (result.archived, result.deleted, result.changed) == (59, 58, 1)
    left = {d["_id"]: d for d in activities["activities"].find(OLD)}
    assert sorted(left) == [1, 120, 1000, 1001, 1002] and left[120]["kind"] == "edited"
    assert activities["activities"].count_documents({}) == 150 - 58 + 3


def test_merge_restore_of_the_archive_brings_the_documents_back(activities, store):
    before = by_id(live(activities))
    result = archive_documents(activities, store, options())
    activities["activities"].insert_one({"_id": 5000, "at": NOW})  # written after the archive: stays
    merged = restore_backup(activities, store, result.backup_id,
                            RestoreOptions(mode="merge", confirmed=True, user="tester"))
    assert merged.collections["activities"].inserted == 59 and merged.collections["activities"].kept == 92
    after = by_id(live(activities))
    assert after.pop(5000) and after == before  # every archived document back, byte for byte


def by_id(raws: list[bytes]) -> dict:
    import bson

    return {bson.decode(raw)["_id"]: raw for raw in raws}


def test_a_replace_restore_of_an_archive_is_refused(activities, store):
    result = archive_documents(activities, store, options())
    before = live(activities)
    with pytest.raises(RestoreRefused, match="only the documents of activities that matched a filter"):
        restore_backup(activities, store, result.backup_id, RestoreOptions(mode="replace", confirmed=True))
    assert live(activities) == before


def test_dry_run_counts_and_changes_nothing(activities, store):
    before = live(activities)
    result = archive_documents(activities, store, options(dry_run=True, confirmed=False))
    assert result.dry_run and result.archived == 59 and result.deleted == 0 and result.backup_id is None
    assert live(activities) == before and store.list_backups() == []
    assert "59 document(s) of activities match" in result.to_text()


def test_unconfirmed_archive_is_refused_before_anything(activities, store):
    before = live(activities)
    with pytest.raises(RestoreRefused, match="not confirmed"):
        archive_documents(activities, store, options(confirmed=False))
    assert live(activities) == before and store.list_backups() == []


def test_a_backup_that_does_not_verify_deletes_nothing(activities, store, monkeypatch):
    real = archive_mod.create_backup

    def corrupted(db, st, opts, progress=None):
        result = real(db, st, opts, progress)
        path = st.folder(result.backup_id) / "activities.csv"
        path.write_bytes(path.read_bytes().replace(b"login", b"LOGIN", 1))
        return result

    monkeypatch.setattr(archive_mod, "create_backup", corrupted)
    before = live(activities)
    with pytest.raises(IntegrityError):
        archive_documents(activities, store, options())
    assert live(activities) == before


def test_nothing_matching_makes_no_backup(activities, store):
    result = archive_documents(activities, store, options(filter={"kind": "logout"}))
    assert result.backup_id is None and result.archived == result.deleted == 0
    assert store.list_backups() == [] and "nothing was archived" in result.to_text()


@pytest.mark.parametrize("bad, message", [
    ({"$where": "true"}, "operator $where is not supported"),
    ({"at": {"$expr": 1}}, "operator $expr is not supported"),
    ({}, "empty filter matches every document"),
    ('{"at": ', "not JSON"),
    ('{"at": {"$lt": {"$date": "yesterday"}}}', "invalid $date"),
])
def test_bad_filters_are_refused_before_anything(activities, store, bad, message):
    before = live(activities)
    with pytest.raises(FilterError, match=message.replace("$", r"\$")):
        archive_documents(activities, store, options(filter=bad))
    assert live(activities) == before and store.list_backups() == []


def test_unknown_collection(activities, store):
    with pytest.raises(UsageError, match="no collection named 'nope'"):
        archive_documents(activities, store, ArchiveOptions("nope", OLD, confirmed=True))


def test_filters_in_json_text_select_the_same_documents(activities, store):
    text = '{"at": {"$lt": {"$date": "2026-03-03"}}, "_id": {"$nin": [{"$numberLong": "100"}, 101]}}'
    result = archive_documents(activities, store, options(filter=text))
    assert result.deleted == 57 and result.filter["_id"] == {"$nin": [{"$numberLong": "100"}, 101]}


def test_object_ids_and_small_batches(db, store):
    ids = [ObjectId() for _ in range(7)]
    db["log"].insert_many([{"_id": i, "old": n % 2 == 0} for n, i in enumerate(ids)])
    result = archive_documents(db, store, ArchiveOptions("log", {"old": True}, confirmed=True, batch=2))
    assert result.deleted == 4 and sorted(d["_id"] for d in db["log"].find()) == sorted(ids[1::2])


def test_archive_is_audited(activities, store):
    from backup_core import audit

    result = archive_documents(activities, store, options())
    entries = audit.read(store.root, 10)
    done = next(e for e in entries if e["action"] == "archive" and e["outcome"] == "ok")
    assert done["backup_id"] == result.backup_id and done["deleted"] == 59 and done["user"] == "tester"
    assert done["filter"] == {"at": {"$lt": {"$date": "2026-03-03T00:00:00.000Z"}}}


def test_archive_rules_are_checked():
    rule = ArchiveRule("activities", "at", 90, "confirm")
    assert ArchiveRule.from_json(rule.to_json()) == rule and rule.id == "activities:at"
    q = rule.query(NOW)
    assert q == {"at": {"$lt": NOW - timedelta(days=90)}}
    for bad in ({"collection": "", "field": "at", "older_than_days": 1},
                {"collection": "a", "field": "$at", "older_than_days": 1},
                {"collection": "a", "field": "at", "older_than_days": float("nan")},
                {"collection": "a", "field": "at", "older_than_days": -1},
                {"collection": "a", "field": "at", "older_than_days": 1, "mode": "sometimes"},
                {"collection": "a", "field": "at", "older_than_days": 1, "extra": 1}):
        with pytest.raises(UsageError):
            ArchiveRule.from_json(bad)
    with pytest.raises(UsageError, match="same collection and field"):
        check_rules([rule.to_json(), rule.to_json()])
