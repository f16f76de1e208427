"""The second copy: the scheduler pushes every new backup to BACKUP_MIRROR_ROOT, catches up on what
the mirror lacks, and notifies once when the mirror falls behind, once when it is back."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backup_core.mirror import mirror_status
from backup_core.scheduler import run_history, run_scheduled_backup
from backup_core.store import LocalStore, open_store

from .test_notify import receiver  # noqa: F401 - the JSON webhook fixture

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def data(db):
    db["Equipment"].insert_many([{"_id": i, "name": f"pump {i}"} for i in range(20)])
    return db


def test_every_new_backup_goes_to_the_mirror_too(settings, data, tmp_path, s3_root):
    mirrored = replace(settings, mirror_root=s3_root)
    first = run_scheduled_backup(mirrored)
    second = run_scheduled_backup(mirrored)
    mirror = open_store(s3_root)
    assert {b.backup_id for b in mirror.list_backups()} == {first["backup_id"], second["backup_id"]}
    assert all(mirror.verify(b.backup_id).ok for b in mirror.list_backups())
    assert mirror_status(LocalStore(settings.backup_root), mirror, grace=timedelta(0)).missing == []
    runs = [h for h in run_history(mirrored, 10) if h.get("kind") == "mirror"]
    assert runs and runs[0]["outcome"] == "ok"


def test_a_mirror_that_falls_behind_is_notified_once_and_catches_up(settings, data, tmp_path, receiver):  # noqa: F811
    blocked = tmp_path / "mirror"
    blocked.write_text("a file where the mirror folder should be")
    bad = replace(settings, mirror_root=str(blocked), notify_urls=(receiver.url,))
    for _ in range(3):
        entry = run_scheduled_backup(bad)
        assert entry["outcome"] == "ok"  # the backup itself is fine
    failures = [m for m in receiver.messages if "mirror" in json_text(m).lower()]
    assert len(failures) == 1 and receiver.messages
    assert mirror_status(LocalStore(settings.backup_root), LocalStore(tmp_path / "ok"), grace=timedelta(0)).behind
    # the mirror comes back: one recovery message, and every backup it lacked is copied
    blocked.unlink()
    run_scheduled_backup(bad)
    assert len(LocalStore(blocked).list_backups()) == 4
    assert len(receiver.messages) == 2


def json_text(message: dict) -> str:
    import json

    return json.dumps(message)
