"""pairing.py: one pass over the live collection feeds every sink the same pairs."""

from __future__ import annotations

import pytest

from backup_core import pairing
from backup_core.backup import BackupOptions, create_backup
from backup_core.compare import compare_backup
from backup_core.pairing import BackupIndex, StatusCounts, pair_collection
from backup_core.paged_compare import StoredComparison
from backup_core.restore import RestoreOptions, plan_restore


class Recorder:
    def __init__(self) -> None:
        self.pairs: list[tuple[str, bytes, bytes | None, bytes | None]] = []

    def add(self, pair) -> None:
        self.pairs.append((pair.status, pair.ident, pair.backup, pair.live))


@pytest.fixture
def changed(db, store):
    db.c.insert_many([{"_id": i, "v": 0} for i in range(30)])
    bid = create_backup(db, store, BackupOptions(user="t")).backup_id
    db.c.delete_many({"_id": {"$in": [3, 4]}})
    db.c.update_many({"_id": {"$in": [5, 6, 7]}}, {"$set": {"v": 1}})
    db.c.insert_many([{"_id": 100}, {"_id": -5}])
    return bid


def test_one_pass_feeds_every_sink_the_same_pairs(db, store, changed, monkeypatch):
    reads = []
    real = pairing.raw_collection
    monkeypatch.setattr(pairing, "raw_collection", lambda db_, name: reads.append(name) or real(db_, name))
    info = store.get(changed)
    first, second, counts = Recorder(), Recorder(), StatusCounts()
    with BackupIndex(store, info, "c", "_id") as index:
        pair_collection(index, db, [first, counts, second])
    assert reads == ["c"]  # the live collection was read once for all three sinks
    assert first.pairs == second.pairs and len(first.pairs) == 32
    assert counts.as_dict() == {"only_in_backup": 2, "only_in_live": 2, "changed": 3, "identical": 25}
    assert sorted(s for s, *_ in first.pairs) == sorted(
        ["only_in_backup"] * 2 + ["only_in_live"] * 2 + ["changed"] * 3 + ["identical"] * 25)


def test_the_cli_the_dashboard_and_the_dry_run_count_the_same_pass(db, store, changed):
    cli = compare_backup(db, store, changed).collections["c"]
    paged = StoredComparison.compute(db, store, changed)
    try:
        page = paged.collections["c"]
        assert (page.only_in_backup, page.only_in_live, page.changed, page.identical) == \
            (cli.only_in_backup, cli.only_in_live, cli.changed, cli.identical) == (2, 2, 3, 25)
        assert paged.count("c") == 7
    finally:
        paged.close()
    dry = plan_restore(db, store, changed, RestoreOptions(mode="replace", user="t")).collections["c"]
    assert (dry.inserted, dry.deleted, dry.updated, dry.unchanged) == (2, 2, 3, 25)
    merge = plan_restore(db, store, changed, RestoreOptions(mode="merge", strategy="live-wins",
                                                           user="t")).collections["c"]
    assert (merge.inserted, merge.kept, merge.skipped, merge.unchanged, merge.deleted) == (2, 2, 3, 25, 0)
