"""The embedded server at any size: inserts in one batch (not O(n^2)) with the same results as before, and
no aggregation where a collection may be larger than the server's materialization budget (50 000)."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import pymongo
import pytest
from pymongo.errors import BulkWriteError

from backup_core import embedded, server_fixes


@contextmanager
def _embedded_server(budget: int | None = None):
    """An in-process embedded server on the SQLite engine: (URI, a counter of its collection scans).

    ``budget``: refuse aggregations over that many documents, as mongoeco refuses them over 50 000.
    """
    from mongoeco.api._async._database_admin_write_commands import DatabaseAdminWriteCommandService as service
    from mongoeco.core.aggregation.cost import AggregationCostPolicy
    from mongoeco.engines import SQLiteEngine

    # undo what an earlier apply() in this process did: the server must apply the fix itself
    if hasattr(service.command_insert, "original"):
        service.command_insert = service.command_insert.original
        server_fixes._APPLIED = False
    scans = {"n": 0}
    original_load, original_init = SQLiteEngine._load_documents, SQLiteEngine.__init__

    def counting(self, *args, **kw):
        scans["n"] += 1
        return original_load(self, *args, **kw)

    def init(self, *args, **kw):
        original_init(self, *args, **kw)
        if budget is not None:
            self.aggregation_cost_policy = AggregationCostPolicy(max_materialized_documents=budget)

    SQLiteEngine._load_documents, SQLiteEngine.__init__ = counting, init
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
        yield box["uri"], scans
    finally:
        stop.set()
        thread.join(30)
        SQLiteEngine._load_documents, SQLiteEngine.__init__ = original_load, original_init


@pytest.fixture(scope="module")
def sqlite_server():
    with _embedded_server() as (uri, scans):
        client = pymongo.MongoClient(uri)
        yield client, scans
        client.close()


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


@pytest.mark.timeout(120)
def test_a_collection_beyond_the_servers_aggregation_budget_is_restored_and_counted(tmp_path):
    """At 100 000 documents the restore's count of its staging collection (an aggregation) was refused:
    "staging collection Equipment failed: Aggregation pipeline exceeds the configured materialization
    budget". Here the budget is 100 documents instead of 50 000."""
    from pymongo.errors import OperationFailure

    from backup_core.backup import BackupOptions, create_backup
    from backup_core.config import Settings
    from backup_core.db import connect, database_info
    from backup_core.restore import RestoreOptions, restore_backup
    from backup_core.store import LocalStore

    with _embedded_server(budget=100) as (uri, _):
        settings = Settings(uri=uri, db_name="budget", backup_root=tmp_path / "b", data_dir=tmp_path / "d")
        with connect(settings) as conn:
            conn.db["big"].insert_many([{"_id": i, "v": i} for i in range(150)])
            with pytest.raises(OperationFailure, match="materialization budget"):
                conn.db["big"].count_documents({})  # what the server refuses
            store = LocalStore(tmp_path / "b")
            backup = create_backup(conn.db, store, BackupOptions(user="t"))
            conn.db["big"].delete_many({"_id": {"$gte": 100}})
            result = restore_backup(conn.db, store, backup.backup_id, RestoreOptions(confirmed=True, user="t"))
            assert result.collections["big"].inserted == 50
            assert database_info(conn)["collections"]["big"]["count"] == 150  # status counts it too
