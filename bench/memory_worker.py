"""Run ONE backup, restore or compare in this fresh process and print its peak RSS and time as JSON.

Usage: python -m bench.memory_worker backup  URI DB ROOT [--jobs N]
       python -m bench.memory_worker restore URI DB ROOT BACKUP_ID [--dry-run] [--allow-other-db] [--jobs N]
       python -m bench.memory_worker compare URI DB ROOT BACKUP_ID

Peak RSS is the kernel's high-water mark of this process's memory, read at the
end: ``VmHWM`` from /proc/self/status on Linux. ``ru_maxrss`` (getrusage) is
reported too but is not used for the figure: Linux carries it over ``execve``
from the process that spawned us, so a worker started by a large parent reports
the parent's size (measured: 75 MB for every run, the bench's own size). The
baseline is the RSS after imports and connecting, before the operation, so
``peak - baseline`` is what the operation itself held. ``seconds`` is the
operation's wall time (the library call only).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import psutil
import pymongo

from backup_core.backup import BackupOptions, create_backup
from backup_core.store import LocalStore


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("op", choices=("backup", "restore", "compare"))
    p.add_argument("uri")
    p.add_argument("db")
    p.add_argument("root")
    p.add_argument("backup_id", nargs="?")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--allow-other-db", action="store_true")
    p.add_argument("--jobs", type=int, default=None)
    a = p.parse_args(argv)
    client = pymongo.MongoClient(a.uri, serverSelectionTimeoutMS=10000)
    db = client[a.db]
    store = LocalStore(a.root)
    if a.op == "restore":
        from backup_core.restore import RestoreOptions, restore_backup  # noqa: F401
    if a.op == "compare":
        from backup_core.compare import compare_backup  # noqa: F401
    client.admin.command("ping")
    jobs = {"jobs": a.jobs} if a.jobs else {}  # (not given: the library's default)
    baseline = psutil.Process().memory_info().rss
    t = time.perf_counter()
    if a.op == "backup":
        res = create_backup(db, store, BackupOptions(user="bench", **jobs))
        detail = {"backup_id": res.backup_id, "documents": sum(c.count for c in res.collections.values())}
    elif a.op == "restore":
        res = restore_backup(db, store, a.backup_id,
                             RestoreOptions(mode="replace", confirmed=not a.dry_run, dry_run=a.dry_run,
                                            allow_other_db=a.allow_other_db, user="bench", **jobs))
        counts = {n: c.counts() for n, c in res.collections.items()}
        detail = {"safety_backup_id": getattr(res, "safety_backup_id", None), "counts": counts,
                  "documents": sum(c["inserted"] + c["updated"] + c["deleted"] + c["unchanged"]
                                   for c in counts.values())}
    else:
        res = compare_backup(db, store, a.backup_id)
        counts = {n: {s: getattr(c, s) for s in ("only_in_backup", "only_in_live", "changed", "identical")}
                  for n, c in res.collections.items()}
        detail = {"counts": counts, "documents": sum(sum(c.values()) for c in counts.values())}
    seconds = time.perf_counter() - t
    ru_maxrss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_kb = _vm_hwm_kb() or ru_maxrss_kb
    print(json.dumps({"peak_rss_mb": round(peak_kb / 1024, 2), "baseline_rss_mb": round(baseline / 2**20, 2),
                      "ru_maxrss_mb": round(ru_maxrss_kb / 1024, 2), "seconds": round(seconds, 3), **detail}))


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
