"""``cleanup [--keep-last N] [--keep-hourly N] ... [--keep-within 7d] [--older-than 7d] [--dry-run]``.

Deletes the backups the retention policy does not keep (restic's ``forget``
rules; see ``backup_core.retention``). With no rule given: the policy saved
for the scheduler, or else "older than 7 days". The newest backup is always
kept; safety backups are kept ``--safety-days`` (default 7) and the newest
one always; pre-write backups ``--pre-write-days`` (default 7); archive
backups (the only copy of archived documents) until deleted by hand, or
``--archive-days``. ``--dry-run`` lists every backup with what would happen and why.
A clean-up also drops what killed restore drills left (``drill.sweep_leftovers``).
"""

from __future__ import annotations

from ..api import BackupSystem
from ..retention import RetentionPolicy
from ..timeutil import parse_duration
from .common import number_type


def register(sub):
    p = sub.add_parser("cleanup", help="delete backups the retention policy does not keep",
                       description=__doc__.split("\n\n", 1)[1])
    for tier in ("last", "hourly", "daily", "weekly", "monthly"):
        p.add_argument(f"--keep-{tier}", type=number_type(f"--keep-{tier}", 0, None, integer=True),
                       metavar="N",
                       help=f"keep the {'N newest backups' if tier == 'last' else f'newest backup of each of the last N {tier} periods'}")
    p.add_argument("--keep-within", metavar="AGE", help="keep every backup within AGE of the newest (e.g. 7d)")
    p.add_argument("--older-than", metavar="AGE", help="keep every backup younger than AGE (e.g. 7d, 36h)")
    p.add_argument("--safety-days", type=number_type("--safety-days", 0, 36500, unit="days"), metavar="DAYS", help="keep safety backups this long (default 7)")
    p.add_argument("--pre-write-days", type=number_type("--pre-write-days", 0, 36500, unit="days"), metavar="DAYS",
                   help="keep pre-write backups (taken before an application's write) this long (default 7)")
    p.add_argument("--archive-days", type=number_type("--archive-days", 0, 36500, unit="days"), metavar="DAYS",
                   help="delete archive backups older than this (default: keep them until deleted by hand)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be deleted, and why")
    p.add_argument("--save", action="store_true",
                   help="save these rules as the scheduler's clean-up policy (deletes nothing now; shows what "
                        "the policy would delete)")
    p.set_defaults(handler=run)
    return p


def policy_from_args(args) -> RetentionPolicy | None:
    """The policy the flags describe, or None when no flag was given."""
    given = {k: getattr(args, k) for k in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")
             if getattr(args, k) is not None}
    if args.keep_within:
        given["keep_within"] = parse_duration(args.keep_within, what="--keep-within")
    if args.older_than:
        given["older_than"] = parse_duration(args.older_than, what="--older-than")
    for name in ("safety_days", "pre_write_days", "archive_days"):
        if getattr(args, name) is not None:
            given[name] = getattr(args, name)
    return RetentionPolicy(**given) if given else None


def run(args, settings):
    return BackupSystem.from_settings(settings).cleanup(policy_from_args(args), dry_run=args.dry_run, save=args.save)
