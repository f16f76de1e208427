"""The Python API (DESIGN.md section 10, contract): settings, typed results, errors, before_write, threads."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from pymongo.errors import InvalidOperation

import backup_core
from backup_core import audit
from backup_core.api import BackupSystem, PreWriteBackup
from backup_core.archive import ArchiveResult
from backup_core.backup import BackupResult
from backup_core.compare import CompareResult
from backup_core.errors import (BackupError, BackupNotFound, IntegrityError, RestoreRefused, UsageError,
                                WriteFailed)
from backup_core.mongoutil import raw_collection
from backup_core.restore import RestoreResult
from backup_core.retention import CleanupResult
from backup_core.status import StatusResult
from backup_core.store import BackupInfo, VerifyResult


def live(db, name) -> list[bytes]:
    return [bytes(d.raw) for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


@pytest.fixture
def bs(mongo_uri, db_name, root):
    with BackupSystem(uri=mongo_uri, db=db_name, root=str(root), user="host-app") as system:
        yield system


def _audit(root, action, outcome=None):
    return next(e for e in audit.read(root, 50) if e["action"] == action and (outcome is None or
                                                                               e["outcome"] == outcome))


def test_the_contract_import_and_the_clis_settings(monkeypatch, mongo_uri, db_name, root):
    assert backup_core.BackupSystem is BackupSystem
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("BACKUP_ROOT", str(root))
    s = BackupSystem(user="host-app").settings
    assert (s.uri, s.db_name, str(s.backup_root), s.user) == (mongo_uri, db_name, str(root), "host-app")
    other = BackupSystem(db="other_db", root=str(root / "x")).settings  # arguments win, as CLI flags do
    assert (other.db_name, str(other.backup_root), other.uri) == ("other_db", str(root / "x"), mongo_uri)
    with pytest.raises(UsageError, match="invalid database name"):
        BackupSystem(db="a/b")
    with pytest.raises(UsageError, match="invalid user"):
        BackupSystem(user="  ")


def test_typed_results_and_the_audit_names_the_user(bs, data, root):
    result = bs.backup()
    assert isinstance(result, BackupResult) and result.trigger == "manual"
    assert {n: c.count for n, c in result.collections.items()} == {"Equipment": 2, "Equipment_select_options": 1}
    listed = bs.backups()
    assert [b.backup_id for b in listed] == [result.backup_id] and isinstance(listed[0], BackupInfo)
    assert isinstance(bs.verify(result.backup_id), VerifyResult)
    compared = bs.compare(result.backup_id, ["Equipment"])
    assert isinstance(compared, CompareResult) and compared.to_json()["collections"]["Equipment"]["identical"] == 2
    status = bs.status()
    assert isinstance(status, StatusResult) and status.last_backup["backup_id"] == result.backup_id
    assert status.collections == {"Equipment": {"count": 2}, "Equipment_select_options": {"count": 1}}
    assert isinstance(bs.cleanup(dry_run=True), CleanupResult)
    entry = _audit(root, "backup", "ok")
    assert entry["user"] == "host-app" and entry["backup_id"] == result.backup_id
    assert isinstance(bs.archive("Equipment", {"qty": 2}), ArchiveResult)


def test_restore_is_a_dry_run_unless_confirmed(bs, data, root):
    first = bs.backup().backup_id
    data["Equipment"].insert_one({"name": "hammer"})
    before = live(data, "Equipment")
    preview = bs.restore(first)
    assert isinstance(preview, RestoreResult) and preview.dry_run and preview.collections["Equipment"].deleted == 1
    with pytest.raises(RestoreRefused) as refused:
        bs.restore(first, mode="replace", dry_run=False)
    assert refused.value.exit_code == 8 and "confirm=True" in refused.value.hint
    assert live(data, "Equipment") == before
    entry = _audit(root, "restore")
    assert entry["outcome"] == "refused" and entry["user"] == "host-app"
    done = bs.restore(first, mode="replace", dry_run=False, confirm=True)
    assert done.safety_backup_id and data["Equipment"].count_documents({}) == 2
    assert _audit(root, "restore", "ok")["user"] == "host-app"


def test_undo_is_a_dry_run_unless_confirmed_and_acts_on_the_latest_restore(bs, data, root):
    first = bs.backup().backup_id
    data["Equipment"].insert_one({"name": "hammer"})
    data["Equipment_select_options"].insert_one({"name": "later edit"})  # not touched by the restore below
    edited = {n: live(data, n) for n in ("Equipment", "Equipment_select_options")}
    with pytest.raises(RestoreRefused, match="no restore"):
        bs.undo()
    done = bs.restore(first, mode="replace", dry_run=False, confirm=True, collections=["Equipment"])
    latest = bs.latest_restore()
    assert latest is not None and latest.backup_id == first and latest.collections == ["Equipment"]
    plan = bs.undo()
    assert plan.dry_run and plan.restored_backup_id == done.safety_backup_id
    assert list(plan.result.collections) == ["Equipment"] and plan.result.collections["Equipment"].inserted == 1
    with pytest.raises(RestoreRefused, match="needs confirmation"):
        bs.undo(dry_run=False)
    with pytest.raises(RestoreRefused, match="no longer the latest"):
        bs.undo(dry_run=False, confirm=True, expect="someone-elses-op")
    assert data["Equipment"].count_documents({}) == 2  # nothing changed by the refusals
    undone = bs.undo(dry_run=False, confirm=True, expect=latest.op)
    assert undone.restore.op == latest.op and not undone.dry_run
    assert {n: live(data, n) for n in edited} == edited  # back as before the restore, the other untouched
    assert _audit(root, "undo", "ok")["user"] == "host-app"
    assert [r.action for r in bs.restores()][:2] == ["undo", "restore"]


def test_errors_are_the_products_with_exit_codes(bs, data, store):
    with pytest.raises(BackupNotFound):
        bs.verify("20000101T000000Z")
    bid = bs.backup().backup_id
    path = store.folder(bid) / "Equipment.csv"
    path.write_bytes(path.read_bytes().replace(b"drill", b"DRILL"))
    with pytest.raises(IntegrityError) as bad:
        bs.verify(bid)
    assert bad.value.exit_code == 5 and bad.value.payload["ok"] is False
    for call in (lambda: bs.backup("Equipment"), lambda: bs.compare(bid, show=-1),
                 lambda: bs.cleanup(keep_forever=True), lambda: bs.cleanup(older_than="soon"),
                 lambda: bs.restore(bid, mode="sideways")):
        with pytest.raises(UsageError):
            call()


def test_cleanup_takes_rules_as_keywords(bs, data):
    ids = [bs.backup().backup_id for _ in range(3)]
    dry = bs.cleanup(keep_last=1, dry_run=True)
    assert sorted(dry.deleted) == sorted(ids[:2]) and len(bs.backups()) == 3
    assert bs.cleanup(keep_last=1).deleted == dry.deleted and [b.backup_id for b in bs.backups()] == ids[2:]


# ---------------------------------------------------------------------------- before_write


def test_before_write_backs_up_exactly_those_collections_first(bs, data, root):
    at = datetime(2026, 5, 4, 3, 2, 1, 123000)
    with bs.before_write(["Equipment"], reason="csv upload", meta={"upload_id": 42, "uploaded_at": at}) as pre:
        assert isinstance(pre, PreWriteBackup)
        assert bs.backups()[0].backup_id == pre.backup_id  # committed before the block runs
        data["Equipment"].delete_many({})
        data["Equipment"].insert_one({"name": "uploaded"})
    info = bs.backup_info(pre.backup_id)
    assert info.trigger == "pre-write" and list(info.collections) == ["Equipment"]
    assert info.collection("Equipment").count == 2
    entry = _audit(root, "pre-write", "ok")
    assert entry["user"] == "host-app" and entry["backup_id"] == pre.backup_id and entry["reason"] == "csv upload"
    assert info.manifest.get("pre_write") == {"reason": "csv upload",
                                              "meta": {"upload_id": 42,
                                                       "uploaded_at": {"$date": "2026-05-04T03:02:01.123Z"}},
                                              "op": entry["op"], "collections": ["Equipment"]}


def test_a_failing_write_names_the_backup_and_undoes_nothing(bs, data, root):
    before = live(data, "Equipment")
    with pytest.raises(WriteFailed) as failed:
        with bs.before_write("Equipment", reason="csv upload") as pre:
            data["Equipment"].delete_many({"name": "drill"})
            raise ValueError("row 7: bad date")
    err = failed.value
    assert err.backup_id == pre.backup_id and pre.backup_id in str(err) and "row 7: bad date" in str(err)
    assert "nothing was undone" in str(err) and f"restore backup {pre.backup_id} in replace mode" in err.hint
    assert isinstance(err.__cause__, ValueError) and isinstance(err, BackupError)
    assert data["Equipment"].count_documents({}) == 1  # the partial write stays
    assert _audit(root, "pre-write")["outcome"] == "error"
    bs.restore(pre.backup_id, mode="replace", dry_run=False, confirm=True)
    assert live(data, "Equipment") == before


def test_a_collection_the_write_creates_is_recorded_absent_and_removed_by_the_undo(bs, data):
    with bs.before_write(["Equipment", "Uploads"], reason="first upload") as pre:
        data["Uploads"].insert_one({"row": 1})
    assert pre.absent == ["Uploads"] and bs.backup_info(pre.backup_id).absent_collections == ["Uploads"]
    bs.restore(pre.backup_id, mode="replace", dry_run=False, confirm=True)
    assert "Uploads" not in data.list_collection_names() and data["Equipment"].count_documents({}) == 2


def test_the_block_does_not_run_when_the_backup_cannot_be_taken(mongo_uri, db_name, data, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    ran = []
    with BackupSystem(uri=mongo_uri, db=db_name, root=str(blocked), user="host-app") as system:
        with pytest.raises(BackupError):
            with system.before_write(["Equipment"], reason="upload"):
                ran.append(True)
    assert ran == [] and data["Equipment"].count_documents({}) == 2


def test_before_write_checks_its_arguments(bs, data):
    for kw in ({"collections": []}, {"collections": [""]}, {"collections": ["Equipment"], "reason": 5},
               {"collections": ["Equipment"], "meta": {"blob": "x" * 20000}},
               {"collections": ["Equipment"], "meta": {"bad": object()}}, {"collections": ["Equipment"],
                                                                           "meta": ["not", "a", "dict"]}):
        with pytest.raises(UsageError):
            with bs.before_write(**kw):
                pytest.fail("the block ran")
    assert bs.backups() == []


# ---------------------------------------------------------------------------- a long-running host


def test_one_system_serves_many_threads(bs, data, root):
    bs.backup()
    errors: list[BaseException] = []
    made: list[str] = []

    def reader() -> None:
        try:
            for _ in range(3):
                bs.backups()
                bs.status()
                bs.compare(bs.backups()[-1].backup_id)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(name: str) -> None:
        try:
            made.append(bs.as_user(name).backup(["Equipment"]).backup_id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)] + \
        [threading.Thread(target=writer, args=(f"user{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and len(made) == 2 and len(bs.backups()) == 3
    users = {e["backup_id"]: e["user"] for e in audit.read(root, 100) if e["action"] == "backup" and
             e["outcome"] == "ok"}
    assert sorted(users[b] for b in made) == ["user0", "user1"]


def test_close_closes_the_client_and_a_later_call_connects_again(mongo_uri, db_name, root, data):
    system = BackupSystem(uri=mongo_uri, db=db_name, root=str(root), user="host-app")
    system.status()
    view = system.as_user("alice")
    conn = system._client._conn
    view.status()
    assert view._client._conn is conn  # one client for the system and its views
    system.close()
    with pytest.raises(InvalidOperation):
        conn.client.admin.command("ping")
    assert system.status().database == db_name and system._client._conn is not conn
    with system:
        pass
    assert system._client._conn is None
