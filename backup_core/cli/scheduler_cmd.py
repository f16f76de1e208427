"""``scheduler [--every DURATION] [--lease SECONDS]``: the headless scheduler, in the foreground.

For a service manager (systemd, supervisord, a container): runs until
SIGTERM/SIGINT, then stops after the running backup finishes. Any number may
be started for one backup root: one is active, the others stand by and take
over when it dies (see ``backup_core.scheduler``). ``--check`` and
``--set-interval`` do one thing and exit.
"""

from __future__ import annotations

import logging
import sys

from ..errors import UsageError
from ..timeutil import parse_duration
from ..scheduler import SchedulerService, auto_backup_check, load_config, save_config, scheduler_status


def register(sub):
    p = sub.add_parser(
        "scheduler", help="run the backup scheduler in the foreground (one active per backup root)",
        description="Runs interval backups and the weekly clean-up until SIGTERM/SIGINT. "
                    "Several may run: one is active, the others stand by.")
    p.add_argument("--every", metavar="DURATION",
                   help="backup interval for THIS process only, e.g. 30s, 10m, 1h (not saved; "
                        "default: the saved interval, see --set-interval)")
    p.add_argument("--lease", type=float, default=30.0, metavar="SECONDS",
                   help="lease period: a standby takes over at most this long after the active "
                        "scheduler dies (default 30)")
    p.add_argument("--check", action="store_true",
                   help="run the auto-backup check once and exit: back up only if the last backup "
                        "is older than the interval")
    p.add_argument("--set-interval", type=float, metavar="HOURS",
                   help="save the backup interval (0.1 to 168 hours) for every scheduler and exit")
    p.add_argument("--retention", metavar="AGE",
                   help="save the retention period (e.g. 7d) for every scheduler and exit")
    p.add_argument("--max-root-mb", type=float, metavar="MB",
                   help="save the backup root size above which a clean-up follows each backup "
                        "(0: no limit) and exit")
    p.set_defaults(handler=run)
    return p


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args, settings):
    root = settings.backup_root
    if args.set_interval is not None or args.retention is not None or args.max_root_mb is not None:
        config = load_config(root)
        if args.set_interval is not None:
            config.interval_hours = args.set_interval
        if args.retention is not None:
            config.retention_days = parse_duration(args.retention, what="--retention").total_seconds() / 86400
        if args.max_root_mb is not None:
            if not args.max_root_mb >= 0:  # also refuses nan
                raise UsageError("--max-root-mb must be 0 (no limit) or a positive size in MB")
            config.max_root_bytes = int(args.max_root_mb * 1024 * 1024) or None
        return save_config(root, config, user=settings.user).to_json()
    if args.check:
        return auto_backup_check(settings, user=settings.user)
    interval = parse_duration(args.every, what="--every") if args.every else None
    if args.lease <= 0:
        raise UsageError("--lease must be positive")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def on_state(state, info):
        if state == "active":
            _say(f"scheduler active: backing up {info['database']} every {info['interval_hours'] * 3600:g}s "
                 f"into {info['root']}")
        elif state == "standby":
            holder = info.get("holder") or {}
            _say(f"scheduler standby: pid {holder.get('pid', '?')} on {holder.get('host', '?')} is active")
        elif state == "stopped":
            _say("scheduler stopped")

    service = SchedulerService(settings, interval=interval, lease_seconds=args.lease, on_state=on_state)
    service.run_forever()
    status = scheduler_status(root)
    return {"stopped": True, "interval_hours": status["interval_hours"], "last_run": status["last_run"]}
