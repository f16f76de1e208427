"""``verify ID``: recompute every hash and decode every row; non-zero exit on any problem."""

from __future__ import annotations

from ..api import BackupSystem


def register(sub):
    p = sub.add_parser("verify", help="check a backup's files against its manifest")
    p.add_argument("backup_id", metavar="ID")
    p.add_argument("--quick", action="store_true", help="hashes and sizes only; do not decode rows")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    return BackupSystem.from_settings(settings).verify(args.backup_id, quick=args.quick)
