"""The embedded server's fixes to mongoeco: inserts in one batch (not O(n^2)), same results as before."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import BulkWriteError

from backup_core import embedded, server_fixes


@pytest.fixture(scope="module")
def sqlite_server():
    """An in-process embedded server on the SQLite engine, whose collection scans a test can count."""
    from mongoeco.api._async._database_admin_write_commands import DatabaseAdminWriteCommandService as service
    from mongoeco.engines import SQLiteEngine

    # undo what an earlier apply() in this process did: the server must apply the fix itself
    if hasattr(service.command_insert, "original"):
        service.command_insert = service.command_insert.original
        server_fixes._APPLIED = False
    scans = {"n": 0}
    original = SQLiteEngine._load_documents

    def counting(self, *args, **kw):
        scans["n"] += 1
        return original(self, *args, **kw)

    SQLiteEngine._load_documents = counting
    ready, stop, box = threading.Event(), threading.Event(), {}
    folder = Path(tempfile.mkdtemp(prefix="fixes-"))

    def on_ready(uri):
        box["uri"] = uri
        ready.set()

    thread = threading.Thread(target=embedded.serve, kwargs=dict(
        data_dir=folder, port=0, seed_db=None, on_ready=on_ready, stop_event=stop), daemon=True)
    thread.start()
    try:
        assert ready.wait(60), "the embedded server did not start"
        client = pymongo.MongoClient(box["uri"])
        yield client, scans
        client.close()
    finally:
        stop.set()
        thread.join(30)
        SQLiteEngine._load_documents = original


def test_the_patch_applies_to_the_pinned_mongoeco():
    from mongoeco.api._async._database_admin_write_commands import DatabaseAdminWriteCommandService

    server_fixes.apply()
    assert "server_fixes" in (DatabaseAdminWriteCommandService.command_insert.__doc__ or "")


def test_an_insert_does_not_scan_the_collection_once_per_document(sqlite_server):
    client, scans = sqlite_server
    coll = client["fixes"]["many"]
    coll.insert_many([{"_id": f"k{i}", "v": i} for i in range(400)])
    scans["n"] = 0
    coll.insert_many([{"_id": f"n{i}", "v": i} for i in range(400)])
    # one document at a time, mongoeco scanned the whole collection for each of them (400 scans)
    assert scans["n"] < 5, scans
    assert coll.count_documents({}) == 800


@pytest.mark.parametrize("ordered", [True, False])
def test_duplicates_are_reported_per_document_as_before(sqlite_server, ordered):
    client, _ = sqlite_server
    coll = client["fixes"][f"dups_{ordered}"]
    coll.create_index("u", unique=True)
    coll.insert_many([{"_id": 1, "u": 1}, {"_id": 2, "u": 2}])
    batch = [{"_id": 3, "u": 3}, {"_id": 1.0, "u": 9}, {"_id": 4, "u": 2}, {"_id": 5, "u": 5}]
    with pytest.raises(BulkWriteError) as err:
        coll.insert_many(batch, ordered=ordered)
    details = err.value.details
    errors = [(w["index"], w["code"]) for w in details["writeErrors"]]
    if ordered:  # stops at the first failing document
        assert errors == [(1, 11000)] and details["nInserted"] == 1
        assert sorted(d["_id"] for d in coll.find()) == [1, 2, 3]
    else:  # goes on: the numerically equal _id and the unique index both refuse
        assert errors == [(1, 11000), (2, 11000)] and details["nInserted"] == 2
        assert sorted(d["_id"] for d in coll.find()) == [1, 2, 3, 5]


def test_apply_is_idempotent():
    from mongoeco.api._async._database_admin_write_commands import DatabaseAdminWriteCommandService

    server_fixes.apply()
    first = DatabaseAdminWriteCommandService.command_insert
    server_fixes.apply()
    assert DatabaseAdminWriteCommandService.command_insert is first
    assert asyncio  # (the patched command is a coroutine function)
    assert asyncio.iscoroutinefunction(first)
