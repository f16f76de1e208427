"""``compare ID [--collections a,b] [--key FIELD] [--show N]``: backup vs live data, per collection."""

from __future__ import annotations

from ..api import BackupSystem
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
    with BackupSystem.from_settings(settings) as system:
        return system.compare(args.backup_id, collections_arg(args.collections), match_field=args.key, show=args.show)
