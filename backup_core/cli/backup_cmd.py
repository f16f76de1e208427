"""``backup [--collections a,b] [--compress]``: write a new snapshot."""

from __future__ import annotations

from ..backup import BackupOptions, create_backup
from ..context import open_operation
from .common import add_collections, collections_arg


def register(sub):
    p = sub.add_parser("backup", help="back up the database into a new snapshot")
    add_collections(p)
    p.add_argument("--compress", action="store_true", help="gzip the CSV files (.csv.gz)")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    options = BackupOptions(collections=collections_arg(args.collections), compress=args.compress,
                            trigger="manual", user=settings.user)
    # the operation starts (and is audited) before the database is reached
    with open_operation(settings, "backup", details={"database": settings.db_name, **options.audit_details()}) as ctx:
        return create_backup(ctx.db, ctx.store, options)
