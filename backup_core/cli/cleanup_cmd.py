"""``cleanup [--keep-last N] [--keep-hourly N] ... [--keep-within 7d] [--older-than 7d] [--dry-run]``.

Deletes the backups the retention policy does not keep (restic's ``forget``
rules; see ``backup_core.retention``). With no rule given: the policy saved
for the scheduler, or else "older than 7 days". The newest backup is always
kept; safety backups are kept ``--safety-days`` (default 7) and the newest
one always. ``--dry-run`` lists every backup with what would happen and why.
"""

from __future__ import annotations

from ..context import open_store
from ..errors import BackupError, UsageError
from ..retention import RetentionPolicy, cleanup
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
    if args.safety_days is not None:
        given["safety_days"] = args.safety_days
    return RetentionPolicy(**given) if given else None


def run(args, settings):
    from ..scheduler import load_retention_policy, save_retention_policy

    policy = policy_from_args(args)
    if args.save:
        if policy is None:
            raise UsageError("--save needs the rules to save (e.g. --keep-daily 7 --keep-weekly 4)")
        save_retention_policy(settings, policy, user=settings.user)
        return cleanup(open_store(settings), policy, dry_run=True, user=settings.user)
    if policy is None:
        try:
            policy = load_retention_policy(settings)
        except BackupError:  # the metadata database is down: the default rule applies
            policy = RetentionPolicy()
    return cleanup(open_store(settings), policy, dry_run=args.dry_run, user=settings.user)
