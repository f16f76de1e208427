"""Clean-up: past the retention period, never the newest, audited; dry runs change nothing."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.retention import cleanup
from backup_core.store import MANIFEST, backup_id_for, day_for, manifest_hash


def _aged(store, backup_id: str, days: float) -> str:
    info = store.get(backup_id)
    when = datetime.now(timezone.utc) - timedelta(days=days)
    new_id = backup_id_for(when)
    data = dict(info.manifest.data, backup_id=new_id, day_of_week=day_for(when),
                created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    data["manifest_sha256"] = manifest_hash(data)
    target = store.root / day_for(when) / new_id
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(store.folder(backup_id), target)
    (target / MANIFEST).write_text(json.dumps(data))
    return new_id


def test_deletes_only_what_is_past_retention_and_never_the_newest(db, store):
    db["a"].insert_one({"x": 1})
    old = [_aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, d) for d in (10, 9, 8)]
    recent = create_backup(db, store, BackupOptions(user="t")).backup_id
    dry = cleanup(store, timedelta(days=7), dry_run=True, user="t")
    assert sorted(dry.deleted) == sorted(old) and len(store.list_backups()) == 4
    res = cleanup(store, timedelta(days=7), user="t")
    assert sorted(res.deleted) == sorted(old) and [b.backup_id for b in store.list_backups()] == [recent]
    last = audit.read(store.root, 1)[0]
    assert last["action"] == "cleanup" and last["outcome"] == "ok" and sorted(last["deleted"]) == sorted(old)


def test_an_old_newest_backup_is_kept(db, store):
    db["a"].insert_one({"x": 1})
    only = _aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, 30)
    assert cleanup(store, timedelta(days=7), user="t").deleted == []
    assert [b.backup_id for b in store.list_backups()] == [only]
