"""Forged manifests (hashes recomputed): injected indexes and options are validated, shown, and
refused when they would destroy restored data (hole 2)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import compare_backup
from backup_core.errors import FormatError, RestoreRefused
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.swapin import SwapInRegistry
from backup_core.store import MANIFEST, LocalStore, manifest_hash

from tests.cli import one_json
from tests.faults.helpers import snapshot

EQ = "Equipment"


@pytest.fixture
def backup(db, store):
    old = datetime.now(timezone.utc) - timedelta(days=30)
    db[EQ].insert_many([{"_id": i, "seen": old, "name": f"pump {i}"} for i in range(60)])
    return create_backup(db, store, BackupOptions(user="t"))


def forge(store: LocalStore, backup_id: str, edit) -> None:
    """Edit the manifest and recompute every hash, as an attacker with write access would."""
    path = store.folder(backup_id) / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest["collections"][EQ])
    manifest["manifest_sha256"] = manifest_hash(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def inject_ttl(entry: dict) -> None:
    entry["indexes"].append({"v": 2, "key": {"seen": 1}, "name": "seen_ttl", "expireAfterSeconds": 0})


def _restore(db, store, backup_id, **kw):
    return restore_backup(db, store, backup_id, RestoreOptions(confirmed=True, user="t", **kw))


def test_injected_ttl_index_is_shown_and_refused_before_any_write(db, store, backup):
    forge(store, backup.backup_id, inject_ttl)
    # verify: a valid spec is not damage, but it says what it would do
    res = store.verify(backup.backup_id)
    assert res.ok and any("seen_ttl" in w and "would delete 60 of 60" in w for w in res.warnings)
    # compare and the dry run name the index
    cmp = compare_backup(db, store, backup.backup_id)
    assert cmp.collections[EQ].indexes == {"added": ["seen_ttl"], "removed": [], "changed": []}
    assert cmp.collections[EQ].warnings
    with pytest.raises(RestoreRefused, match="would destroy restored data"):
        _restore(db, store, backup.backup_id, dry_run=True)
    # the restore is refused before anything is written: no safety backup, live unchanged
    db[EQ].delete_many({"_id": {"$gte": 30}})
    before = snapshot(db, EQ)
    with pytest.raises(RestoreRefused, match="seen_ttl.*would delete 60 of 60"):
        _restore(db, store, backup.backup_id, mode="replace")
    assert snapshot(db, EQ) == before
    assert [b.trigger for b in store.list_backups()] == ["manual"]
    assert SwapInRegistry.of(db).names() == set()


def test_confirmed_destructive_options_restore_as_asked(db, store, backup):
    forge(store, backup.backup_id, inject_ttl)
    plan = _restore(db, store, backup.backup_id, dry_run=True, allow_destructive_options=True)
    assert plan.collections[EQ].indexes["added"] == ["seen_ttl"]
    res = _restore(db, store, backup.backup_id, mode="replace", allow_destructive_options=True)
    assert res.safety_backup_id
    assert "seen_ttl" in db[EQ].index_information()


def test_capped_smaller_than_the_data_is_refused(db, store, backup):
    forge(store, backup.backup_id, lambda e: e["options"].update({"capped": True, "size": 512}))
    with pytest.raises(RestoreRefused, match="capped collection of 512 bytes"):
        _restore(db, store, backup.backup_id, mode="replace")
    assert db[EQ].count_documents({}) == 60


def test_a_merge_into_an_existing_collection_does_not_apply_backup_indexes(db, store, backup):
    forge(store, backup.backup_id, inject_ttl)
    res = _restore(db, store, backup.backup_id, mode="merge")  # merge keeps live indexes: nothing destroyed
    assert res.collections[EQ].indexes == {"added": [], "removed": [], "changed": []}
    assert "seen_ttl" not in db[EQ].index_information()


@pytest.mark.parametrize("edit, reason", [
    (lambda e: e["indexes"].append({"key": {"a": 1}, "name": "a_1", "evilOption": 1}), "does not know"),
    (lambda e: e["indexes"].append({"key": {"a": 1}, "name": "a_1", "expireAfterSeconds": "soon"}),
     "invalid 'expireAfterSeconds'"),
    (lambda e: e["options"].update({"viewOn": "x", "pipeline": []}), "view"),
    (lambda e: e["options"].update({"capped": "yes", "size": 10}), "invalid collection option 'capped'"),
    (lambda e: e["indexes"].append(dict(e["indexes"][0])), "two indexes are named"),
])
def test_specs_mongodb_would_not_accept_fail_verify_and_restore(db, store, backup, cli, edit, reason):
    forge(store, backup.backup_id, edit)
    with pytest.raises(FormatError, match=reason):
        store.verify(backup.backup_id)
    with pytest.raises(FormatError):
        _restore(db, store, backup.backup_id, mode="replace")
    proc = cli("verify", backup.backup_id)
    assert proc.returncode == 5 and reason.split("'")[0] in proc.stderr
    assert db[EQ].count_documents({}) == 60


def test_compare_and_dry_run_json_carry_index_differences(db, store, backup, cli):
    db[EQ].create_index("name", name="by_name")
    forge(store, backup.backup_id, inject_ttl)
    body = one_json(cli("compare", backup.backup_id, "--json"))
    assert body["collections"][EQ]["indexes"] == {"added": ["seen_ttl"], "removed": ["by_name"], "changed": []}
    assert body["collections"][EQ]["warnings"]
    dry = cli("restore", backup.backup_id, "--mode", "replace", "--dry-run", "--allow-destructive-options",
              "--json")
    assert one_json(dry)["collections"][EQ]["indexes"]["removed"] == ["by_name"]
    refused = cli("restore", backup.backup_id, "--mode", "replace", "--yes")
    assert refused.returncode == 8 and "--allow-destructive-options" in refused.stderr


def test_a_swap_in_copy_missing_documents_is_never_swapped_in(db, store, backup, monkeypatch):
    """Defence in depth: whatever the server silently discards while filling, the swap does not happen."""
    from backup_core import swapin

    real = swapin.raw_collection

    class Lossy:
        def __init__(self, coll):
            self._coll = coll

        def __getattr__(self, name):
            return getattr(self._coll, name)

        def insert_many(self, docs, **kw):
            return self._coll.insert_many(list(docs)[:-1], **kw)  # drops one document per batch

    monkeypatch.setattr(swapin, "raw_collection",
                        lambda db_, name: Lossy(real(db_, name)) if name.startswith("__bk_stage_") else real(db_, name))
    db[EQ].delete_many({"_id": {"$gte": 50}})
    before = snapshot(db, EQ)
    with pytest.raises(RestoreRefused, match="holds 59 of the backup's 60 documents"):
        _restore(db, store, backup.backup_id, mode="replace")
    assert snapshot(db, EQ) == before
    assert SwapInRegistry.of(db).leftovers() == []
