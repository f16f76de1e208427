"""``archive COLLECTION --filter JSON [--dry-run] [--yes]``: back up matching documents, verify, delete exactly those.

The filter is JSON in the product's dialect (``{"at": {"$lt": {"$date":
"2026-01-01"}}}``; see ``backup_core.query``). Without ``--yes`` and without
``--dry-run`` nothing changes: the command refuses like ``restore`` does.
``restore ID --mode merge`` of the archive backup brings the documents back.
"""

from __future__ import annotations

from ..api import BackupSystem
from ..progress import terminal_progress


def register(sub):
    p = sub.add_parser("archive", help="back up the documents a filter matches, verify, then delete exactly those",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("collection", metavar="COLLECTION")
    p.add_argument("--filter", required=True, metavar="JSON",
                   help='the documents to archive, e.g. \'{"at": {"$lt": {"$date": "2026-01-01"}}}\'')
    p.add_argument("--compress", action="store_true", help="gzip the archive's CSV file")
    p.add_argument("--dry-run", action="store_true", help="only count the matching documents; change nothing")
    p.add_argument("--yes", action="store_true", help="confirm: really back up and delete them")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    progress = terminal_progress("archive") if args.yes and not args.dry_run else None
    try:
        with BackupSystem.from_settings(settings) as system:
            return system.archive(args.collection, args.filter, dry_run=args.dry_run, confirm=args.yes,
                                  compress=args.compress, progress=progress)
    finally:
        if progress is not None:
            progress.close()
