"""``backup [--collections a,b] [--compress] [--jobs N]``: write a new snapshot.

On a terminal, stderr shows one updating progress line (documents done of
total, rate, time left); piped or redirected, nothing is added to the output.
"""

from __future__ import annotations

import argparse

from ..api import BackupSystem
from ..jobs import default_jobs
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


def register(sub):
    p = sub.add_parser("backup", help="back up the database into a new snapshot")
    add_collections(p)
    p.add_argument("--compress", action="store_true", help="gzip the CSV files (.csv.gz)")
    add_jobs(p, "back up")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    progress = terminal_progress("backup")
    try:
        with BackupSystem.from_settings(settings) as system:
            return system.backup(collections_arg(args.collections), compress=args.compress, jobs=args.jobs,
                                 progress=progress)
    finally:
        if progress is not None:
            progress.close()
