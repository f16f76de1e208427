"""Verify, listing and clean-up of stored backups."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupNotFound, FormatError, IntegrityError, UsageError
from backup_core.retention import cleanup, parse_duration
from backup_core.store import MANIFEST, manifest_hash

from tests.store.conftest import forge_part


@pytest.fixture
def backup(db, store):
    db.Equipment.insert_many([{"_id": i, "name": f"n{i}", "tags": ["a", i]} for i in range(5)])
    db.Options.insert_one({"_id": 1, "v": "x"})
    return store.get(create_backup(db, store, BackupOptions(compress=False)).backup_id)


@pytest.fixture
def folder(store, backup):
    return store.folder(backup.backup_id)


def _all_files(folder):
    return sorted(p for p in folder.iterdir())


def test_verify_ok(store, backup):
    res = store.verify(backup.backup_id)
    assert res.ok and res.collections["Equipment"]["status"] == "ok"


def test_flipping_any_single_byte_of_any_file_fails_verify(store, backup, folder):
    for path in _all_files(folder):
        data = path.read_bytes()
        for pos in range(len(data)):
            flipped = bytearray(data)
            flipped[pos] ^= 0x01
            path.write_bytes(bytes(flipped))
            try:
                res = store.verify(backup.backup_id)
                assert not res.ok, f"flip at {path.name}:{pos} not detected"
            except (IntegrityError, FormatError):
                pass  # the manifest itself no longer parses or hashes: also a failure
            finally:
                path.write_bytes(data)
    assert store.verify(backup.backup_id).ok


def test_missing_and_extra_files_fail_verify(store, backup, folder):
    (folder / "extra.txt").write_text("x")
    assert "unexpected file extra.txt" in store.verify(backup.backup_id).problems
    (folder / "extra.txt").unlink()
    (folder / "Options.csv").unlink()  # the readable copy only: the data is intact, a warning says so
    res = store.verify(backup.backup_id)
    assert res.ok and any("Options.csv is missing" in w for w in res.warnings)
    part = backup.collection("Options").own
    (store.root / part.location).unlink()  # the data itself
    res = store.verify(backup.backup_id)
    assert not res.ok and f"Options: missing data object {part.object}" in res.problems


def test_row_count_mismatch_fails_verify_even_with_consistent_hashes(store, backup, folder):
    lines = (folder / "Equipment.csv").read_bytes().split(b"\r\n")
    forge_part(store, backup.backup_id, "Equipment", b"\r\n".join(lines[:-2] + [b""]))  # drop one row
    res = store.verify(backup.backup_id)
    assert not res.ok and "4 documents, manifest says 5" in res.problems[0]


def test_future_format_and_hostile_paths_are_refused(store, backup, folder):
    m = json.loads((folder / MANIFEST).read_text())
    for change, message in [
        (lambda m: m.update(format_version=99), "format version 99"),
        (lambda m: m["collections"]["Options"]["parts"][0].update(file="../Options.csv"), "expected 'Options.csv'"),
        (lambda m: m["collections"]["Options"]["parts"][0].update(file="/etc/passwd"), "expected 'Options.csv'"),
        (lambda m: m["collections"]["Options"]["parts"][0].update(object="../" * 20 + "etc/passwd"),
         "invalid object"),
    ]:
        bad = json.loads(json.dumps(m))
        change(bad)
        bad["manifest_sha256"] = manifest_hash(bad)
        (folder / MANIFEST).write_text(json.dumps(bad))
        with pytest.raises(FormatError, match=message):
            store.get(backup.backup_id)
        assert store.list_backups() == []
    (folder / MANIFEST).write_text(json.dumps(m))
    assert store.verify(backup.backup_id).ok


def test_unknown_and_invalid_ids(store, backup):
    with pytest.raises(BackupNotFound):
        store.get("20000101T000000Z")
    for bad in ("../etc", "", "20000101T000000Z/../x", "latest"):
        with pytest.raises(UsageError):
            store.get(bad)


def test_cleanup_deletes_exactly_the_expired_never_the_newest(db, store):
    db.a.insert_one({"x": 1})
    # (the latest safety backup is the undo of the latest restore, kept whatever its age:
    # tests/test_retention.py; here only regular backups)
    ids = [create_backup(db, store, BackupOptions(trigger=t)).backup_id for t in ("manual", "scheduled", "scheduled")]
    now = datetime.now(timezone.utc)
    # nothing is older than 7 days
    assert cleanup(store, timedelta(days=7), now=now).deleted == []
    # a week later everything is expired, but the newest backup stays
    later = now + timedelta(days=8)
    dry = cleanup(store, timedelta(days=7), now=later, dry_run=True)
    assert sorted(dry.deleted) == sorted(ids[:2]) and len(store.list_backups()) == 3
    res = cleanup(store, timedelta(days=7), now=later)
    assert sorted(res.deleted) == sorted(ids[:2])
    assert [b.backup_id for b in store.list_backups()] == [ids[2]]


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("10m", 600), ("1h", 3600), ("7d", 604800), ("1.5", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "0s", "-1h", "abc", "1y", "1e3h"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text)
