"""Swap-in collections are known from their registry, never from their names (holes 1 and 7)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from backup_core import swapin
from backup_core.backup import BackupOptions, create_backup
from backup_core.mongoutil import raw_collection
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.swapin import SwapInRegistry, user_collections

from .cli import one_json
from .faults.helpers import snapshot

LOOKALIKE = "__restore_tmp_20260101T000000Z_Equipment"


def test_a_user_collection_named_like_old_temporaries_is_backed_up_and_never_dropped(db, store):
    db[LOOKALIKE].insert_many([{"_id": i, "precious": True} for i in range(30)])
    db["Equipment"].insert_many([{"_id": i} for i in range(10)])
    res = create_backup(db, store, BackupOptions(user="t"))
    assert res.collections[LOOKALIKE].count == 30
    before = snapshot(db, LOOKALIKE)
    # a replace-restore of another collection leaves it alone ...
    restore_backup(db, store, res.backup_id, RestoreOptions(mode="replace", collections=["Equipment"],
                                                            confirmed=True, user="t"))
    assert snapshot(db, LOOKALIKE) == before
    # ... and a restore of it restores it, like any collection
    db[LOOKALIKE].delete_many({"_id": {"$lt": 10}})
    restore_backup(db, store, res.backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert snapshot(db, LOOKALIKE) == before


def test_swap_in_names_are_random_and_registered_before_use(db):
    reg = SwapInRegistry.of(db)
    a, b = reg.create("Equipment", "op1"), reg.create("Equipment", "op1")
    assert a != b and a.startswith(swapin.PREFIX) and len(a) > len(swapin.PREFIX) + 16
    assert reg.names() == {a, b}
    db[a].insert_one({"x": 1})
    assert a not in user_collections(db)  # registered: not user data, whatever it holds
    reg.finished(b)
    assert reg.names() == {a}


def _register_as_dead(db, target: str) -> str:
    reg = SwapInRegistry.of(db)
    name = reg.create(target, "killed-op")
    # the owner: a process that no longer exists
    reg.meta[swapin.REGISTRY].update_one({"name": name}, {"$set": {"pid": 2**22 + 7, "pid_started": 1.0}})
    raw_collection(db, name).insert_many([{"_id": i} for i in range(50)])
    return name


def test_stale_swap_ins_are_swept_at_every_operation_start_even_if_they_come_back(db, store, settings, cli):
    db["Equipment"].insert_many([{"_id": i} for i in range(5)])
    name = _register_as_dead(db, "Equipment")
    # status shows the leftover before anything removes it
    status = one_json(cli("status", "--json"))
    assert [s["name"] for s in status["leftovers"]["staging"]] == [name]
    assert status["leftovers"]["staging"][0]["documents"] == 50
    create_backup(db, store, BackupOptions(user="t"))  # any operation start sweeps
    assert name not in db.list_collection_names()
    # the killed client's last insert lands after the sweep and re-creates it ...
    raw_collection(db, name).insert_many([{"_id": i} for i in range(50, 60)])
    res = create_backup(db, store, BackupOptions(user="t"))
    assert name not in res.collections  # never backed up as user data
    assert name not in db.list_collection_names()  # ... and the next operation drops it again
    assert one_json(cli("status", "--json"))["leftovers"]["staging"] == []


def test_a_running_owner_is_never_swept(db, store):
    from backup_core.operation import operation

    db["Equipment"].insert_one({"_id": 1})
    reg = SwapInRegistry.of(db)
    with operation(store, "restore", user="t") as op:  # a restore of this process, still running
        name = reg.create("Equipment", op.id)
        db[name].insert_one({"_id": 1})
        create_backup(db, store, BackupOptions(user="t"))
        assert name in db.list_collection_names()
    # once that operation has ended without cleaning up (the database was gone, say), it is stale
    create_backup(db, store, BackupOptions(user="t"))
    assert name not in db.list_collection_names()


def test_another_live_process_keeps_its_swap_ins(db, store):
    import subprocess
    import sys

    from backup_core.locks import process_start_time

    db["Equipment"].insert_one({"_id": 1})
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        reg = SwapInRegistry.of(db)
        name = reg.create("Equipment", "their-op")
        reg.meta[swapin.REGISTRY].update_one({"name": name}, {"$set": {
            "pid": owner.pid, "pid_started": process_start_time(owner.pid)}})
        db[name].insert_one({"_id": 1})
        create_backup(db, store, BackupOptions(user="t"))
        assert name in db.list_collection_names()
    finally:
        owner.kill()
        owner.wait()
    create_backup(db, store, BackupOptions(user="t"))
    assert name not in db.list_collection_names()


def test_dropped_entries_are_forgotten_after_the_grace_period(db):
    reg = SwapInRegistry.of(db)
    name = _register_as_dead(db, "Equipment")
    assert reg.sweep() == [name]
    assert name in reg.names()  # kept for the grace period
    old = (datetime.now(timezone.utc) - timedelta(seconds=swapin.GRACE_S + 5)).isoformat()
    reg.meta[swapin.REGISTRY].update_one({"name": name}, {"$set": {"dropped_at": old}})
    assert reg.sweep() == []
    assert reg.names() == set()


def test_a_restore_leaves_no_registered_swap_in(db, store):
    db["Equipment"].insert_many([{"_id": i} for i in range(10)])
    res = create_backup(db, store, BackupOptions(user="t"))
    restore_backup(db, store, res.backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert SwapInRegistry.of(db).names() == set()
    assert sorted(db.list_collection_names()) == ["Equipment"]


def test_a_dead_restores_swap_in_is_shown_as_abandoned_not_active(db, cli):
    db["Equipment"].insert_many([{"_id": i} for i in range(5)])
    dead = _register_as_dead(db, "Equipment")
    reg = SwapInRegistry.of(db)
    running = reg.create("Equipment", "op-of-this-test")  # owned by this (live) process' running operation
    db[running].insert_one({"_id": 1})
    from backup_core import operation as operation_module

    with operation_module._running_guard:
        operation_module._running.add("op-of-this-test")
    try:
        states = {e["name"]: e["state"] for e in reg.leftovers(operation_module.running_ids())}
    finally:
        with operation_module._running_guard:
            operation_module._running.discard("op-of-this-test")
    assert states == {dead: "abandoned", running: "active"}
    text = cli("status").stdout
    assert f"swap-in collection {dead} of a restore into Equipment (50 documents, abandoned: its restore is gone" \
        in text and "active" not in text.split(dead)[1].splitlines()[0]
