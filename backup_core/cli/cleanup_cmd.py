"""``cleanup [--older-than 7d] [--dry-run]``: delete backups past retention."""

from __future__ import annotations

from ..context import open_store
from ..retention import cleanup
from ..timeutil import parse_duration


def register(sub):
    p = sub.add_parser("cleanup", help="delete backups older than the retention period")
    p.add_argument("--older-than", default="7d", metavar="AGE", help="e.g. 7d, 36h, 90m (default 7d)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    age = parse_duration(args.older_than, what="--older-than")
    return cleanup(open_store(settings), age, dry_run=args.dry_run, user=settings.user)
