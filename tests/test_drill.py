"""Restore drills (``backup_core.drill``): a good backup passes and leaves nothing; a damaged one fails naming
the collection, and the failure is kept, shown and notified; the live database never changes; a killed drill's
database is dropped by the next drill; refusals write nothing; local, S3, encrypted and copied roots."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace

import pytest

from backup_core import audit, drill_results
from backup_core.backup import BackupOptions, create_backup
from backup_core.pairing import BackupIndex
from backup_core.context import open_store
from backup_core.drill import (DRILL_PREFIX, DrillFailed, _prove, drill_backup, scratch_name,
                               CollectionDrill)
from backup_core.scheduler.runs import scheduled_drills
from backup_core.drill_registry import REGISTRY, DrillRegistry
from backup_core.embedded import seed_demo
from backup_core.errors import BackupNotFound, KeyMissing, RestoreRefused, UsageError
from backup_core.mongoutil import raw_collection
from backup_core.swapin import write_collection
from backup_core.scheduler import run_history
from backup_core.store.crypto import generate_key_file

from .conftest import ROOT
from .store.conftest import tamper
from .test_notify import Receiver

pytestmark = pytest.mark.timeout(120)


def snapshot(db) -> dict:
    """Everything of a database that a drill must never change: options, indexes and every document's bytes."""
    out = {}
    for info in db.list_collections():
        name = info["name"]
        coll = raw_collection(db, name)
        out[name] = (dict(info.get("options") or {}),
                     sorted(repr(sorted(ix.items())) for ix in db[name].list_indexes()),
                     [bytes(d.raw) for d in coll.find({}, sort=[("_id", 1)])])
    return out


def drill_databases(client, db) -> list[str]:
    return [n for n in client.list_database_names() if n.startswith(f"{DRILL_PREFIX}{db.name}")]


@pytest.fixture
def demo(db):
    """The demo data (Decimal128, nested documents, a unique index) plus a collection with options."""
    seed_demo(db)
    db.create_collection("logs", validator={"$jsonSchema": {"bsonType": "object", "required": ["at"]}},
                         validationLevel="moderate")
    db.logs.create_index([("at", -1), ("level", 1)], name="at_level")
    db.logs.insert_many([{"_id": i, "at": i * 1000, "level": "info" if i % 3 else "warn"} for i in range(30)])
    return db


def backup(db, store, **kw) -> str:
    return create_backup(db, store, BackupOptions(trigger="manual", **kw)).backup_id


@pytest.fixture
def drilled(client, demo, store):
    """Runs drills and checks, after each, that the live database is unchanged and no drill database is left."""
    before = snapshot(demo)

    def run(settings, *args, **kw):
        try:
            return drill_backup(settings, *args, **kw)
        finally:
            assert snapshot(demo) == before
            assert drill_databases(client, demo) == []
    return run


# ---------------------------------------------------------------------------- a good backup


def test_a_drill_of_a_good_backup_passes_and_leaves_no_scratch_database(client, demo, store, settings, drilled):
    bid = backup(demo, store)
    result = drilled(settings, bid)
    assert result.ok and result.dropped and result.error is None
    assert set(result.collections) == {"Equipment", "Equipment_select_options", "logs"}
    for name, c in result.collections.items():
        assert c.ok and c.problems == [] and c.restored == c.count == demo[name].count_documents({})
        assert c.restore_s > 0 and c.docs_per_s > 0
    assert result.documents == 150 + 45 + 30 and result.restore_s > 0 and result.duration_s >= result.restore_s
    assert result.target.startswith(f"{DRILL_PREFIX}{demo.name}_{bid}_")
    # the registry knows the scratch database was dropped
    entry = client[settings.meta_db][REGISTRY].find_one({"_id": result.target})
    assert entry["state"] == "dropped" and entry["backup_id"] == bid
    # the backup carries its last drill; status has the sentence; the audit log the drill
    assert drill_results.last_per_backup(settings)[bid]["ok"] is True
    summary = drill_results.summary(settings)
    assert summary["proven"] == (f"last proven restorable: {bid} at {result.finished_at}, "
                                 f"restore took {result.summary()['restore_s']:.2f} s")
    outcome, started = audit.read(store.root, 2)
    assert (started["action"], started["outcome"]) == ("drill", "started")
    assert (outcome["action"], outcome["outcome"], outcome["backup_id"], outcome["ok"]) == ("drill", "ok", bid, True)


def test_the_newest_backup_is_drilled_when_none_is_named(demo, store, settings, drilled):
    backup(demo, store)
    newest = backup(demo, store, collections=["logs"])  # (within the same second: id ...-01)
    result = drilled(settings)
    assert result.backup_id == newest and list(result.collections) == ["logs"]


def test_no_backup_to_drill(db, settings):
    with pytest.raises(BackupNotFound, match="no backups in"):
        drill_backup(settings)


# ---------------------------------------------------------------------------- a damaged backup


def test_a_corrupted_data_object_fails_the_drill_naming_the_collection(client, demo, store, settings, drilled,
                                                                      receiver):
    settings = replace(settings, notify_urls=(receiver.url,))
    bid = backup(demo, store)
    entry = store.get(bid).collection("Equipment")
    # one byte changed, the size kept: only the hash can tell
    tamper(store, bid, entry.own.location, lambda data: data[:500] + bytes([data[500] ^ 1]) + data[501:])
    with pytest.raises(DrillFailed) as failed:
        drilled(settings, bid)
    exc = failed.value
    assert exc.exit_code == 12
    lines = str(exc).splitlines()
    assert lines[0] == f"restore drill of backup {bid} FAILED: 1 of 3 collections did not restore as backed up"
    assert lines[1:] == ["Equipment: hash mismatch: the stored data does not match its SHA-256 in the manifest"]
    result = exc.result
    assert not result.collections["Equipment"].ok and result.collections["Equipment"].restored is None
    assert result.collections["logs"].ok and result.collections["Equipment_select_options"].ok
    # kept, shown by status, exported as metrics, notified, audited
    last = drill_results.summary(settings)["last"]
    assert last["ok"] is False and last["failures"] == lines[1:]
    assert drill_results.summary(settings)["last_success"] is None
    [message] = receiver.messages
    assert message["type"] == "failure" and "Restore drill failed" in message["title"]
    assert "Equipment: hash mismatch" in message["message"] and bid in message["message"]
    outcome = audit.read(store.root, 1)[0]
    assert outcome["action"] == "drill" and outcome["outcome"] == "error" and "Equipment: hash mismatch" in outcome["error"]
    # a later drill that passes ends the streak with one recovery message (a compressed backup: an
    # uncompressed one of the same data would share the damaged stored object, and rightly fail)
    good = backup(demo, store, compress=True)
    assert drilled(settings, good).ok
    assert [m["type"] for m in receiver.messages] == ["failure", "success"]


def test_a_removed_data_object_fails_the_drill_naming_the_collection(demo, store, settings, drilled):
    bid = backup(demo, store)
    entry = store.get(bid).collection("logs")
    (store.root / entry.own.location).unlink()  # the data object itself
    with pytest.raises(DrillFailed) as failed:
        drilled(settings, bid)
    assert str(failed.value).splitlines()[1:] == [
        f"logs: missing object: the stored data of this collection ({entry.file}) is not in the backup root"]
    assert [n for n, c in failed.value.result.collections.items() if c.ok] == ["Equipment",
                                                                                "Equipment_select_options"]


def test_the_proof_finds_missing_extra_and_changed_documents_and_indexes(demo, store):
    """The proof itself can fail: a restored collection that differs from the backup in any way is caught."""
    bid = backup(demo, store)
    info = store.get(bid)
    scratch = demo.client[f"{DRILL_PREFIX}proof_{demo.name}"]
    try:
        with BackupIndex(store, info, "logs", "_id") as index:
            c = CollectionDrill("logs", 30)
            c.restored = write_collection(scratch, info.collection("logs"), "logs", index.iter_documents(),
                                          index.count)
            assert _prove(scratch, info, c, index) == []
            scratch.logs.delete_one({"_id": 3})
            scratch.logs.insert_one({"_id": 100, "at": 1})
            scratch.logs.update_one({"_id": 4}, {"$set": {"level": "error"}})
            scratch.logs.drop_index("at_level")
            c.restored = scratch.logs.count_documents({})
            assert _prove(scratch, info, c, index) == [
                "documents: 1 missing after the restore (first: _id 3)",
                "documents: 1 not byte-equal to the backup (first: _id 4)",
                "documents: 1 restored but not in the backup (first: _id 100)",
                "index: missing at_level",
            ]
            c.restored = 29
            assert _prove(scratch, info, c, index)[0] == "count: 29 documents after the restore, the backup holds 30"
    finally:
        demo.client.drop_database(scratch.name)


# ---------------------------------------------------------------------------- never the live database


@pytest.mark.parametrize("target", ["live", "meta", "admin", "existing", "invalid", "unprefixed"])
def test_refused_targets_write_nothing(client, demo, store, settings, drilled, target):
    bid = backup(demo, store)
    other = f"{DRILL_PREFIX}other_{demo.name}"
    client[other].keep.insert_one({"_id": 1})
    try:
        name, error, match = {
            "live": (demo.name, RestoreRefused, "it is the live database"),
            "meta": (settings.meta_db, RestoreRefused, "system or metadata database"),
            "admin": ("admin", RestoreRefused, "system or metadata database"),
            "existing": (other, RestoreRefused, "exists and is not a drill database"),
            "invalid": ("a/b", UsageError, "invalid drill database name"),
            "unprefixed": (f"scratch_{demo.name}", UsageError, "a drill database's name starts with 'drill_'"),
        }[target]
        with pytest.raises(error, match=match):
            drilled(settings, bid, target_db=name)
        assert list(client[other].keep.find()) == [{"_id": 1}]
        assert client[settings.meta_db][REGISTRY].count_documents({}) == 0  # nothing registered either
        assert drill_results.last_per_backup(settings) == {}
    finally:
        client.drop_database(other)


def test_a_named_scratch_database_is_used_and_dropped(client, demo, store, settings, drilled):
    bid = backup(demo, store)
    name = f"drill_named_{demo.name}"
    assert drilled(settings, bid, target_db=name).target == name
    assert name not in client.list_database_names()
    assert drilled(settings, bid, target_db=name).ok  # its dropped entry is taken over


def test_scratch_names_fit_mongodb_limits():
    for database in ("equipment_db", "x" * 63, "é" * 31 + "x"):
        name = scratch_name(database, "20261124T143022Z-0001")
        assert len(name.encode()) <= 63 and name.startswith(DRILL_PREFIX) and "20261124T143022Z-0001" in name
    assert scratch_name("db", "20261124T143022Z") != scratch_name("db", "20261124T143022Z")


# ---------------------------------------------------------------------------- killed drills


def test_a_killed_drill_leaves_nothing_after_the_next_drill(client, demo, store, settings, cli_env):
    bid = backup(demo, store)
    before = snapshot(demo)
    env = dict(cli_env, BACKUP_CORE_TEST_PAUSE="drill-restored", BACKUP_CORE_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "drill", bid], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "paused at drill-restored" in line, line + proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    [left] = drill_databases(client, demo)  # half-way: one collection restored
    assert client[left].list_collection_names() == ["Equipment"]
    # status finds it, naming the killed drill
    status = subprocess.run([sys.executable, "-m", "backup_core", "status", "--json"], cwd=ROOT, env=cli_env,
                            capture_output=True, text=True)
    import json

    [shown] = json.loads(status.stdout)["leftovers"]["drill_databases"]
    assert (shown["name"], shown["backup_id"], shown["owner_gone"]) == (left, bid, True)
    # the next drill drops it first, and drills as usual
    result = drill_backup(settings, bid)
    assert result.ok and result.swept == [left]
    assert drill_databases(client, demo) == [] and snapshot(demo) == before
    # the killed one is on the audit record as started, never finished
    assert any(e["action"] == "drill" and e["outcome"] == "started" and e.get("pid") == proc.pid
               for e in audit.read(store.root, 20))


def test_the_registry_drops_only_what_it_owns_and_only_when_the_owner_is_gone(client, db, settings):
    registry = DrillRegistry(client, settings.meta_db)
    names = {k: f"{DRILL_PREFIX}{k}_{db.name}" for k in ("dead", "other_host_old", "other_host_new", "stray")}
    names["forged"] = f"forged_{db.name}"  # an entry naming a database without the prefix (or admin): never dropped
    try:
        for name in names.values():
            client[name].c.insert_one({"_id": 1})
        coll = client[settings.meta_db][REGISTRY]
        old, new = "2000-01-01T00:00:00.000Z", "2999-01-01T00:00:00.000Z"
        coll.insert_many([
            {"_id": names["dead"], "name": names["dead"], "host": os.uname().nodename, "pid": 2 ** 22 + 7,
             "heartbeat_at": new, "state": "active"},
            {"_id": names["other_host_old"], "name": names["other_host_old"], "host": "elsewhere", "pid": 1,
             "heartbeat_at": old, "state": "active"},
            {"_id": names["other_host_new"], "name": names["other_host_new"], "host": "elsewhere", "pid": 1,
             "heartbeat_at": new, "state": "active"},
            {"_id": names["forged"], "name": names["forged"], "host": "elsewhere", "heartbeat_at": old,
             "state": "active"},
            {"_id": "admin", "name": "admin", "host": "elsewhere", "heartbeat_at": old, "state": "active"},
        ])  # "stray" exists but is not registered: never touched
        assert sorted(registry.sweep()) == sorted([names["dead"], names["other_host_old"]])
        existing = set(client.list_database_names())
        assert names["other_host_new"] in existing and names["stray"] in existing and names["forged"] in existing
        assert registry.leftovers() and all(e["name"] not in (names["forged"], "admin") for e in registry.leftovers())
        assert names["dead"] not in existing
        # a killed client's last insert re-creates a dropped database: the next sweep drops it again
        client[names["dead"]].c.insert_one({"_id": 2})
        assert registry.sweep() == [names["dead"]]
        # after the grace period the entry goes
        coll.update_one({"_id": names["dead"]}, {"$set": {"dropped_at": old}})
        registry.sweep()
        assert coll.find_one({"_id": names["dead"]}) is None
    finally:
        for name in names.values():
            client.drop_database(name)


def test_cleanup_drops_what_a_killed_drill_left(client, db, settings, cli):
    name = f"{DRILL_PREFIX}killed_{db.name}"
    client[name].c.insert_one({"_id": 1})
    client[settings.meta_db][REGISTRY].insert_one({"_id": name, "name": name, "host": "elsewhere", "pid": 1,
                                                   "heartbeat_at": "2000-01-01T00:00:00.000Z",
                                                   "state": "active"})
    try:
        import json

        out = cli("cleanup", "--older-than", "30d", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["drill_databases_dropped"] == [name]
        assert name not in client.list_database_names()
    finally:
        client.drop_database(name)


# ---------------------------------------------------------------------------- every kind of root


def test_a_drill_on_an_s3_root_passes(demo, settings, s3_root, drilled):
    s3 = replace(settings, backup_root=s3_root)
    bid = backup(demo, open_store(s3))
    result = drilled(s3, bid)
    assert result.ok and result.root == s3_root
    assert drill_results.last_per_backup(s3)[bid]["ok"] is True
    assert drill_results.last_per_backup(settings) == {}  # results belong to their root


def test_an_encrypted_backup_drills_with_its_key_and_is_refused_without(demo, settings, tmp_path, drilled):
    key = tmp_path / "key"
    generate_key_file(key)
    keyed = replace(settings, key_file=str(key))
    bid = backup(demo, open_store(keyed))
    assert open_store(keyed).get(bid).encrypted
    assert drilled(keyed, bid).ok
    with pytest.raises(KeyMissing):
        drilled(settings, bid)


def test_a_drill_on_a_copy_target_passes(demo, store, settings, tmp_path, cli, drilled):
    bid = backup(demo, store)
    copy_root = tmp_path / "offsite"
    out = cli("copy", bid, "--to", str(copy_root))
    assert out.returncode == 0, out.stderr
    result = drilled(replace(settings, backup_root=copy_root), bid)
    assert result.ok and result.root == str(copy_root)


def test_a_drill_on_another_server_registers_its_database_there(client, demo, store, settings, mongo_uri, drilled):
    bid = backup(demo, store)
    other = mongo_uri + ("&" if "?" in mongo_uri else "/?") + "appname=drill-target"
    result = drilled(replace(settings, drill_uri=other), bid)
    assert result.ok and result.server.endswith("appname=drill-target")


# ---------------------------------------------------------------------------- the scheduler's drills


def test_scheduled_drills_take_the_newest_and_one_older_backup(demo, store, settings):
    import random

    ids = []
    for _ in range(3):
        ids.append(backup(demo, store, collections=["logs"]))
    entries = scheduled_drills(settings, rng=random.Random(1))
    older = random.Random(1).choice(list(reversed(ids[:2])))
    assert [e["backup_id"] for e in entries] == [ids[2], older]
    assert all(e["kind"] == "drill" and e["outcome"] == "ok" and e["trigger"] == "scheduled" for e in entries)
    assert [h["backup_id"] for h in run_history(settings, kind="drill")] == [older, ids[2]]
    drills = drill_results.last_per_backup(settings)
    assert set(drills) == {ids[2], older} and all(d["trigger"] == "scheduled" for d in drills.values())


def test_a_failing_scheduled_drill_is_recorded_and_never_raises(demo, store, settings):
    bid = backup(demo, store, collections=["logs"])
    (store.root / store.get(bid).collection("logs").own.location).unlink()
    [entry] = scheduled_drills(settings)
    assert entry["outcome"] == "error" and entry["failures"][0].startswith("logs: missing object")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_the_drill_server_setting_is_read_and_never_shown():
    from backup_core.config import Settings

    s = Settings.load(env={"BACKUP_DRILL_URI": "mongodb://u:pw@scratch-host/"}, secrets={})
    assert s.drill_uri == "mongodb://u:pw@scratch-host/" and "pw" not in repr(s)
    assert Settings.load(env={}, secrets={}).drill_uri is None
