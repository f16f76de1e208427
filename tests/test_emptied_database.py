"""An emptied or shrunk database: every backup of it says so, unattended runs notify once, and clean-up
keeps the newest backup that held data of each collection."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.retention import RetentionPolicy, apply_policy, cleanup
from backup_core.scheduler import run_scheduled_backup

from .cli import one_json
from .test_notify import Receiver
from .test_retention import _aged

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def filled(db):
    db["Equipment"].insert_many([{"_id": i, "n": i} for i in range(40)])
    db["Options"].insert_many([{"_id": i} for i in range(12)])
    return db


def _backup(db, store, **kw):
    return create_backup(db, store, BackupOptions(user="t", **kw))


def test_a_backup_of_a_wiped_database_warns_everywhere(filled, store, cli, root):
    good = _backup(filled, store)
    assert good.warnings == []
    filled.client.drop_database(filled.name)
    body = one_json(cli("backup", "--json"))
    assert len(body["warnings"]) == 1
    assert body["warnings"][0] == (f"the database {filled.name} is empty (no collections); the last backup with "
                                   f"data, {good.backup_id}, held 52 documents")
    text = cli("backup")
    assert text.returncode == 0 and "WARNING: the database" in text.stdout
    outcome = next(e for e in audit.read(store, 5) if e["action"] == "backup" and e["outcome"] == "ok")
    assert outcome["warnings"] == [text.stdout.split("WARNING: ")[1].strip()]
    assert store.get(body["backup_id"]).manifest.get("warnings") == body["warnings"]


def test_a_collection_gone_emptied_or_shrunk_is_named(filled, store):
    _backup(filled, store)
    filled["Equipment"].delete_many({"_id": {"$gte": 10}})  # 40 -> 10
    filled["Options"].delete_many({})
    filled["New"].insert_one({"x": 1})
    res = _backup(filled, store)
    assert any("Equipment holds 10 documents, down from 40" in w for w in res.warnings)
    assert any("Options is empty; the previous backup" in w for w in res.warnings)
    filled.drop_collection("Equipment")
    again = _backup(filled, store)
    assert any("collection Equipment is gone" in w for w in again.warnings)


def test_normal_changes_and_safety_backups_say_nothing(filled, store):
    _backup(filled, store)
    filled["Equipment"].delete_many({"_id": {"$lt": 5}})  # 40 -> 35: a normal day
    assert _backup(filled, store).warnings == []
    assert _backup(filled, store, collections=["Options"]).warnings == []  # the others are not judged
    assert _backup(filled, store, trigger="safety", collections=["Options"]).warnings == []


def test_clean_up_keeps_the_newest_backup_with_data_until_data_comes_back(filled, store):
    good = _aged(store, _backup(filled, store).backup_id, 10)
    filled.client.drop_database(filled.name)
    empties = [_backup(filled, store).backup_id for _ in range(3)]
    for policy in (RetentionPolicy(keep_last=2), RetentionPolicy(older_than=timedelta(days=7))):
        decisions = {d.backup_id: d for d in apply_policy(store.list_backups(), policy)}
        assert decisions[good].keep, policy
        assert decisions[good].reasons == ["newest backup holding data of Equipment, Options (newer backups "
                                           "hold none)"]
    res = cleanup(store, RetentionPolicy(keep_last=1), user="t")
    assert good not in res.deleted and sorted(res.deleted) == sorted(empties[:2])
    # data again: the old backup is no longer the last one holding it
    filled["Equipment"].insert_one({"_id": 1})
    filled["Options"].insert_one({"_id": 1})
    _backup(filled, store)
    assert good in cleanup(store, RetentionPolicy(keep_last=1), user="t").deleted


def test_an_unattended_backup_of_an_emptied_database_notifies_once_and_its_end_once(filled, settings):
    receiver = Receiver()
    try:
        notified = replace(settings, notify_urls=(receiver.url,))
        run_scheduled_backup(notified)
        filled.client.drop_database(filled.name)
        entries = [run_scheduled_backup(notified) for _ in range(3)]
        assert all(e["outcome"] == "ok" and e["warnings"] for e in entries)
        warned = [m for m in receiver.messages if "needs attention" in m.get("title", "")]
        assert len(warned) == 1 and "the database" in warned[0]["message"] and "is empty" in warned[0]["message"]
        filled["Equipment"].insert_one({"_id": 1})
        run_scheduled_backup(notified)
        run_scheduled_backup(notified)
        back = [m for m in receiver.messages if "normal again" in m.get("title", "")]
        assert len(back) == 1 and len(receiver.messages) == 2, json.dumps(receiver.messages)[:500]
    finally:
        receiver.close()


def test_a_partial_backup_of_an_emptied_collection_warns(filled, store):
    _backup(filled, store)
    filled["Options"].delete_many({})
    res = _backup(filled, store, collections=["Options"])
    assert len(res.warnings) == 1 and res.warnings[0].startswith("collection Options is empty; the previous backup")
