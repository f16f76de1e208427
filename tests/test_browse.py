"""backup_core.browse: substring search and paging over a backup's documents, streamed."""

from __future__ import annotations

import pytest

from backup_core import audit, browse
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupNotFound, UsageError


@pytest.fixture
def info(db, store):
    db["things"].insert_many([{"_id": i, "name": f"Item {i}", "meta": {"colour": "Red" if i % 4 == 0 else "blue"}}
                              for i in range(100)])
    return store.get(create_backup(db, store, BackupOptions(user="t")).backup_id)


def test_pages_cover_every_document_once(store, info):
    seen, page = [], 0
    while True:
        res = browse.find_documents(store, info, "things", page=page, page_size=30)
        seen += [d["_id"] for d in res.items]
        if not res.has_more:
            break
        page += 1
    assert seen == list(range(100)) and page == 3


def test_stops_reading_early(store, info):
    res = browse.find_documents(store, info, "things", page=0, page_size=10)
    assert res.has_more and res.scanned == 11  # ten plus one look-ahead, not all 100


def test_search_is_case_insensitive_across_nested_fields(store, info):
    res = browse.find_documents(store, info, "things", "RED", page_size=100)
    assert [d["_id"] for d in res.items] == list(range(0, 100, 4)) and not res.has_more
    assert browse.find_documents(store, info, "things", "item 42").items[0]["name"] == "Item 42"
    assert browse.find_documents(store, info, "things", "nope").items == []


def test_bad_arguments(store, info):
    with pytest.raises(UsageError):
        browse.find_documents(store, info, "things", page=-1)
    with pytest.raises(UsageError):
        browse.find_documents(store, info, "things", page_size=0)
    with pytest.raises(UsageError):
        browse.find_documents(store, info, "missing")


def test_table_rows_are_readable():
    rows = browse.table_rows([{"_id": {"$oid": "a" * 24}, "n": {"$numberLong": "5"}, "d": {"x": [1]}, "s": "t"}])
    assert rows == [{"_id": "a" * 24, "n": "5", "d": '{"x": [1]}', "s": "t"}]


def test_delete_backup_audits(store, info):
    browse.delete_backup(store, info.backup_id, user="ann")
    assert not store.exists(info.backup_id)
    entry, started = audit.read(store.root, 2)
    assert (entry["action"], entry["user"], entry["backup_id"], entry["outcome"]) == ("delete", "ann", info.backup_id, "ok")
    assert (started["action"], started["user"], started["backup_id"], started["outcome"], started["op"]) == \
        ("delete", "ann", info.backup_id, "started", entry["op"])
    with pytest.raises(BackupNotFound):
        browse.delete_backup(store, info.backup_id, user="ann")
    entry, started = audit.read(store.root, 2)
    assert (entry["action"], entry["outcome"]) == ("delete", "error")
    assert (started["action"], started["outcome"], started["op"]) == ("delete", "started", entry["op"])
