"""``undo [--dry-run] [--yes]``: undo the latest restore of the database, as the dashboard's Undo does.

The latest restore (finished, failed or interrupted) is the one whose safety
backup is the newest of the database and says so in its own manifest
(``undo.find_latest``); only the collections it touched are put back. Without
``--yes`` and without ``--dry-run`` nothing changes. When the latest restore
cannot be undone safely (none, already undone, still running, its record
forged or cut), the command refuses with the reason and exit 8.
"""

from __future__ import annotations

from ..api import BackupSystem
from ..progress import terminal_progress
from .backup_cmd import add_jobs


def register(sub):
    p = sub.add_parser("undo", help="undo the latest restore (from its safety backup); --dry-run previews it")
    p.add_argument("--dry-run", action="store_true", help="report what the undo would change; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm: really change the database")
    add_jobs(p, "compare, stage and write")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    progress = terminal_progress("dry run" if args.dry_run else "undo") if args.yes or args.dry_run else None
    try:
        with BackupSystem.from_settings(settings) as system:
            return system.undo(dry_run=args.dry_run, confirm=args.yes, jobs=args.jobs, progress=progress)
    finally:
        if progress is not None:
            progress.close()
