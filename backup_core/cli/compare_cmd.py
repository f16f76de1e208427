"""``compare ID [--collections a,b] [--key FIELD] [--show N]``: backup vs live data, per collection."""

from __future__ import annotations

from ..compare import compare_backup
from ..context import open_context
from ..errors import UsageError
from .common import add_collections, collections_arg, number_type


def register(sub):
    p = sub.add_parser("compare", help="compare a backup with the live database")
    p.add_argument("backup_id", metavar="ID")
    add_collections(p)
    p.add_argument("--key", default="_id", help="field that pairs documents (default _id); must be unique")
    p.add_argument("--show", type=number_type("--show", 0, 1_000_000, integer=True), default=0, metavar="N",
                   help="also show up to N differing documents per collection, with their field differences")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    if args.show < 0:
        raise UsageError("--show must be 0 or more")
    with open_context(settings) as ctx:
        return compare_backup(ctx.db, ctx.store, args.backup_id, collections_arg(args.collections),
                              key=args.key, show=args.show)
