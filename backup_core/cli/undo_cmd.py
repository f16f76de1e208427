"""``undo [--dry-run] [--yes]``: undo the latest restore of the database, as the dashboard's Undo does.

The latest restore (finished, failed or interrupted) is the one whose safety
backup is the newest of the database and says so in its own manifest
(``undo.find_latest``); only the collections it touched are put back. Without
``--yes`` and without ``--dry-run`` nothing changes. When the latest restore
cannot be undone safely (none, already undone, still running, its record
forged or cut), the command refuses with the reason and exit 8.
"""

from __future__ import annotations

from ..context import open_operation
from ..errors import RestoreRefused
from ..jobs import default_jobs
from ..progress import terminal_progress
from ..undo import UndoOptions, undo
from .backup_cmd import add_jobs


def register(sub):
    p = sub.add_parser("undo", help="undo the latest restore (from its safety backup); --dry-run previews it")
    p.add_argument("--dry-run", action="store_true", help="report what the undo would change; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm: really change the database")
    add_jobs(p, "compare, stage and write")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    action = "undo_dry_run" if args.dry_run else "undo"
    details = {"database": settings.db_name}
    if not args.yes and not args.dry_run:
        # refused before connecting to anything or taking the lock; still on the record
        with open_operation(settings, action, details=details, lock=False):
            raise RestoreRefused("undo needs confirmation: nothing was changed",
                                 hint="add --dry-run to see what it would change, or --yes to undo")
    with open_operation(settings, action, details=details) as ctx:
        progress = terminal_progress("dry run" if args.dry_run else "undo")
        try:
            return undo(ctx.db, ctx.store, UndoOptions(
                dry_run=args.dry_run, confirmed=args.yes, user=settings.user,
                jobs=args.jobs if args.jobs is not None else default_jobs(), progress=progress))
        finally:
            if progress is not None:
                progress.close()
