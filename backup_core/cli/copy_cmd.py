"""``copy ID [ID ...] --to ROOT`` / ``copy --all-missing --to ROOT``: a second copy in another root.

Copies backups exactly as stored (encrypted ones stay encrypted) to a local
folder or an ``s3://bucket/prefix``, and verifies each copy on arrival.
"""

from __future__ import annotations

from ..config import root_value
from ..context import open_store
from ..errors import UsageError
from ..mirror import copy_backups


def register(sub):
    p = sub.add_parser("copy", help="copy backups to another root (local folder or s3://), verified on arrival",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("backup_ids", metavar="ID", nargs="*")
    p.add_argument("--to", required=True, metavar="ROOT", help="destination: a folder or s3://bucket/prefix")
    p.add_argument("--all-missing", action="store_true", help="copy every backup the destination lacks")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    if bool(args.backup_ids) == bool(args.all_missing):
        raise UsageError("give backup ids or --all-missing (one of the two)")
    src = open_store(settings)
    dst = open_store(settings, str(root_value(args.to)))
    return copy_backups(src, dst, args.backup_ids, user=settings.user, all_missing=args.all_missing)
