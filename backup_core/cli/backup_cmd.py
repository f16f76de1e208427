"""``backup [--collections a,b] [--compress] [--jobs N]``: write a new snapshot.

On a terminal, stderr shows one updating progress line (documents done of
total, rate, time left); piped or redirected, nothing is added to the output.
The text says whether the backup is encrypted (and with which key). Whether
it is point-in-time consistent is in its ``--json`` (``point_in_time``,
``consistency``) and said once by ``status``, not after every backup: on a
standalone server it is the same for every backup.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..backup import BackupOptions, BackupResult, create_backup, default_jobs
from ..context import open_operation
from ..progress import terminal_progress
from .common import add_collections, collections_arg


def jobs_arg(value: str) -> int:
    """``--jobs N``: a whole number >= 1."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"invalid --jobs {value!r}: give a whole number of 1 or more")
    return n


def add_jobs(p, what: str) -> None:
    p.add_argument("--jobs", type=jobs_arg, default=None, metavar="N",
                   help=f"{what} this many collections at a time (default: the number of CPUs, at most 4; "
                        f"{default_jobs()} here); a point-in-time backup of a replica set reads one at a time")


@dataclass
class BackupReport:
    result: BackupResult
    key_fingerprint: str | None  # the key the new backup is encrypted with; None: not encrypted

    def to_json(self) -> dict:
        return {**self.result.to_json(), "encrypted": self.key_fingerprint is not None,
                "key_fingerprint": self.key_fingerprint}

    def to_text(self) -> str:
        r = self.result
        enc = (f"encrypted with key {self.key_fingerprint}" if self.key_fingerprint
               else "not encrypted (set BACKUP_KEY_FILE to encrypt)")
        lines = [f"backup {r.backup_id} written to {r.path} in {r.duration_s:.2f}s, {enc}"]
        lines += [f"  {n}: {c.count} documents, {c.bytes} bytes, sha256 {c.sha256}" for n, c in r.collections.items()]
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("backup", help="back up the database into a new snapshot")
    add_collections(p)
    p.add_argument("--compress", action="store_true", help="gzip the CSV files (.csv.gz)")
    add_jobs(p, "back up")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    options = BackupOptions(collections=collections_arg(args.collections), compress=args.compress,
                            trigger="manual", user=settings.user,
                            jobs=args.jobs if args.jobs is not None else default_jobs())
    # the operation starts (and is audited) before the database is reached
    with open_operation(settings, "backup", details={"database": settings.db_name, **options.audit_details()}) as ctx:
        progress = terminal_progress("backup")
        try:
            result = create_backup(ctx.db, ctx.store, options, progress=progress)
            written = ctx.store.get(result.backup_id)  # its own manifest says how it was stored
            return BackupReport(result, written.key_fingerprint if written.encrypted else None)
        finally:
            if progress is not None:
                progress.close()
