"""SIGKILL in the middle of a backup or a restore: nothing partial is ever listed or restored.

A backup spools in ``<root>/tmp/spool-<pid>-...``, stores its data objects and
writes its manifest last; a restore fills swap-in collections registered in the
swap-in registry (``backup_core.swapin``) and swaps them in with
``renameCollection``. These tests kill the process at the worst moments and
check what the next run sees.
"""

from __future__ import annotations

import json

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupNotFound, FormatError
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import LocalStore, open_store
from backup_core.swapin import SwapInRegistry

from tests.conftest import run_cli
from tests.faults.helpers import seed, sigkill, snapshot, start_driver, temporaries, wait_for, wait_for_line


def _assert_recovered(store: LocalStore, root, cli, killed_tmp: list) -> dict:
    """After a kill: nothing listed, nothing gettable, lock free, next backup works and sweeps."""
    assert store.list_backups() == [] and killed_tmp
    # the killed holder's lock is stale at once (its process is gone): a zero-wait lock succeeds
    with open_store(root).lock("test", 0):
        pass
    done = cli("backup", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert temporaries(root) == [], "the next backup must sweep the killed backup's temporary folder"
    assert [b.backup_id for b in store.list_backups()] == [out["backup_id"]]
    assert store.verify(out["backup_id"]).ok
    return out


@pytest.mark.timeout(120)
def test_sigkill_mid_backup_leaves_no_partial_backup(db, store, root, cli, cli_env):
    seed(db, 300)
    seed(db, 50, coll="Zz_second", seed_value=4)  # a second collection still to write when killed
    proc = start_driver(cli_env, "backup", "--json", pause="after-first-collection")
    wait_for_line(proc, "FAULT: paused")
    tmp = temporaries(root)
    assert len(tmp) == 1 and tmp[0].name.startswith("spool-"), "killed mid-write"
    assert list((root / "data").rglob("*/*"))  # a data object is stored, and no manifest
    sigkill(proc)
    assert store.list_backups() == []
    listed = run_cli(cli_env, "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)["backups"] == []
    out = _assert_recovered(store, root, cli, tmp)
    assert out["collections"]["Equipment"]["count"] == 300


@pytest.mark.timeout(120)
def test_sigkill_as_soon_as_the_temporary_folder_appears(db, store, root, cli, cli_env):
    """The brief's recipe: kill at the first sight of ``.tmp-*`` (no hook in the product)."""
    seed(db, 400)
    proc = start_driver(cli_env, "backup", "--json")
    tmp = wait_for(lambda: temporaries(root) or proc.poll() is not None, what="a spool folder", step=0.001)
    if proc.poll() is not None:  # the backup won the race: it must then be complete and valid
        proc.communicate()
        (info,) = store.list_backups()
        assert store.verify(info.backup_id).ok
        pytest.skip("the backup finished before it could be killed")
    sigkill(proc)
    _assert_recovered(store, root, cli, tmp)


@pytest.mark.timeout(120)
def test_a_killed_backup_cannot_be_restored(db, store, root, cli_env):
    from datetime import timedelta

    from backup_core.store import backup_id_for
    from backup_core.timeutil import utc_now

    seed(db, 200)
    started = utc_now()
    proc = start_driver(cli_env, "backup", "--json", pause="after-first-collection")
    wait_for_line(proc, "FAULT: paused")
    (tmp,) = temporaries(root)
    sigkill(proc)
    before = snapshot(db, "Equipment")
    # whatever id it would have had (its start, to the second), no such backup exists
    for seconds in range(0, 6):
        with pytest.raises((BackupNotFound, FormatError)):
            restore_backup(db, store, backup_id_for(started + timedelta(seconds=seconds)),
                           RestoreOptions(mode="replace", confirmed=True))
    assert snapshot(db, "Equipment") == before


# --------------------------------------------------------------------------
# SIGKILL during a restore (paused at a checkpoint of the test seam, ``backup_core/testseam.py``)

_RESTORE = """
import sys, pymongo
from backup_core.store import LocalStore
from backup_core.restore import RestoreOptions, restore_backup
uri, db, root, bid = sys.argv[1:5]
c = pymongo.MongoClient(uri)
restore_backup(c[db], LocalStore(root), bid, RestoreOptions(mode="replace", confirmed=True, user="killed"))
print("restore finished")
"""


@pytest.mark.timeout(150)
@pytest.mark.parametrize("phase", ["fill", "swap"])
def test_sigkill_mid_restore_then_a_second_restore_succeeds(phase, db, store, root, mongo_uri, client):
    import os
    import subprocess
    import sys

    from tests.faults.helpers import ROOT

    original = seed(db, 150)
    seed(db, 30, coll="Other", seed_value=9)
    other_original = snapshot(db, "Other")
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].delete_many({"quantity": 1})
    db["Equipment"].insert_one({"asset_id": "added-after-backup"})
    db["Other"].delete_many({})
    live_before = snapshot(db, "Equipment")

    env = dict(os.environ, BACKUP_CORE_TEST_PAUSE=phase, BACKUP_CORE_TEST_PAUSE_SECONDS="120")
    proc = subprocess.Popen([sys.executable, "-c", _RESTORE, mongo_uri, db.name, str(root), backup.backup_id],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_line(proc, f"paused at {phase}")
    sigkill(proc)

    # each collection is wholly old or wholly new, never empty or half-restored
    for name, old, new in (("Equipment", live_before, original), ("Other", [], other_original)):
        now = snapshot(db, name)
        assert now in (old, new), f"{name} is half-restored after a kill during {phase}"
    # the killed restore committed its safety backup before writing: it is complete and verifies
    safety = [b for b in store.list_backups() if b.trigger == "safety"]
    assert len(safety) == 1 and store.verify(safety[0].backup_id).ok
    assert temporaries(root) == []

    result = restore_backup(db, store, backup.backup_id,
                            RestoreOptions(mode="replace", confirmed=True, lock_timeout=5))
    assert snapshot(db, "Equipment") == original
    assert snapshot(db, "Other") == other_original
    # no swap-in collection of the killed restore is left
    assert SwapInRegistry.of(db).leftovers() == []
    assert sorted(db.list_collection_names()) == ["Equipment", "Other"]
    assert result.safety_backup_id and store.verify(result.safety_backup_id).ok
