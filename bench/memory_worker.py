"""Run ONE backup or restore in this fresh process and print its peak RSS as JSON.

Usage: python -m bench.memory_worker backup|restore URI DB ROOT [BACKUP_ID]

Peak RSS is the kernel's high-water mark of this process's memory, read at the
end: ``VmHWM`` from /proc/self/status on Linux. ``ru_maxrss`` (getrusage) is
reported too but is not used for the figure: Linux carries it over ``execve``
from the process that spawned us, so a worker started by a large parent reports
the parent's size (measured: 75 MB for every run, the bench's own size). The
baseline is the RSS after imports and connecting, before the operation, so
``peak - baseline`` is what the operation itself held.
"""

from __future__ import annotations

import json
import resource
import sys

import psutil
import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.store import LocalStore


def main(argv: list[str]) -> None:
    op, uri, db_name, root = argv[:4]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    db = client[db_name]
    store = LocalStore(root)
    if op == "restore":
        from backup_core.restore import RestoreOptions, restore_backup  # noqa: F401
    client.admin.command("ping")
    baseline = psutil.Process().memory_info().rss
    if op == "backup":
        res = create_backup(db, store, BackupOptions(user="bench"))
        detail = {"backup_id": res.backup_id, "documents": sum(c.count for c in res.collections.values())}
    else:
        res = restore_backup(db, store, argv[4], RestoreOptions(mode="replace", confirmed=True, user="bench"))
        detail = {"safety_backup_id": getattr(res, "safety_backup_id", None)}
    ru_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = _vm_hwm_kb() or ru_maxrss_kb
    print(json.dumps({"peak_rss_mb": round(peak_kb / 1024, 2), "baseline_rss_mb": round(baseline / 2**20, 2),
                      "ru_maxrss_mb": round(ru_maxrss_kb / 1024, 2), **detail}))


def _vm_hwm_kb() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
