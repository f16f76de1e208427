"""``restore ID --mode replace|merge [...] [--dry-run] [--yes]``: restore a backup into the database.

Without ``--yes`` and without ``--dry-run`` nothing changes: the command
refuses with a non-zero exit and says how to preview or proceed. On a
terminal, stderr shows one updating progress line per phase (comparing,
safety backup, writing); piped or redirected, nothing is added.
"""

from __future__ import annotations

import json

from ..api import BackupSystem
from ..errors import UsageError
from ..progress import terminal_progress
from ..restore import MODES, STRATEGIES
from .backup_cmd import add_jobs
from .common import add_collections, collections_arg


def register(sub):
    p = sub.add_parser("restore", help="restore a backup (replace or merge); --dry-run previews it")
    p.add_argument("backup_id", metavar="ID")
    p.add_argument("--mode", choices=MODES, required=True,
                   help="replace: each collection becomes exactly the backup; merge: upsert by key")
    add_collections(p)
    p.add_argument("--strategy", choices=STRATEGIES, default="backup-wins",
                   help="merge only: who wins on documents present on both sides (default backup-wins)")
    p.add_argument("--key", default="_id", help="field that pairs documents (default _id); must be unique")
    p.add_argument("--ids", metavar="A,B",
                   help="restore only these documents, by key value (comma-separated; JSON values allowed)")
    p.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm: really change the database")
    p.add_argument("--allow-other-db", action="store_true",
                   help="allow a backup taken from a database of another name")
    p.add_argument("--allow-destructive-options", action="store_true",
                   help="restore even when the backup's TTL indexes or capped size would delete restored "
                        "documents (compare shows them)")
    add_jobs(p, "compare, stage and write")
    p.set_defaults(handler=run)
    return p


def ids_arg(value: str | None) -> list | None:
    """``--ids a,b`` -> key values; an item that parses as JSON and is not a plain string/number
    (e.g. ``{"$oid": "..."}``) is used as a JSON-dialect value, anything else as typed text."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not v for v in items):
        raise UsageError(f"invalid --ids {value!r}: give comma-separated key values")
    out: list = []
    for v in items:
        if v.startswith("{") or v.startswith("["):
            try:
                out.append(json.loads(v))
                continue
            except ValueError:
                pass
        out.append(v)
    return out


def run(args, settings):
    progress = terminal_progress("dry run" if args.dry_run else "restore") if args.dry_run or args.yes else None
    try:
        with BackupSystem.from_settings(settings) as system:
            return system.restore(args.backup_id, args.mode, dry_run=args.dry_run, confirm=args.yes,
                                  collections=collections_arg(args.collections), strategy=args.strategy,
                                  match_field=args.key, ids=ids_arg(args.ids), allow_other_db=args.allow_other_db,
                                  allow_destructive_options=args.allow_destructive_options, jobs=args.jobs,
                                  progress=progress)
    finally:
        if progress is not None:
            progress.close()
