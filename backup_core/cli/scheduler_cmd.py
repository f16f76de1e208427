"""``scheduler [--every DURATION] [--lease SECONDS] [--metrics-port PORT]``: the headless scheduler, in the foreground.

For a service manager (systemd, supervisord, a container): runs until
SIGTERM/SIGINT, then stops after the running backup finishes. Any number may
be started for one backup root and database, on any hosts that share the
MongoDB: one is active, the others stand by and take over when it dies (see
``backup_core.scheduler``). ``--metrics-port`` serves ``/metrics`` for
Prometheus while it runs. ``--check``, ``--set-interval`` (and the other
settings: ``--retention``, ``--max-root-mb``, ``--drill-every``) and
``--test-notify`` do one thing and exit.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass

from .. import notify
from ..errors import BackupError, StorageError
from ..scheduler import SchedulerService, auto_backup_check, load_config, save_config, scheduler_status
from ..scheduler.config import MAX_INTERVAL_HOURS, MIN_INTERVAL_HOURS
from ..timeutil import format_duration, parse_duration
from .common import number_type, printable

MIN_LEASE_S, MAX_LEASE_S = 1.0, 86400.0
MIN_EVERY_S = 1.0  # --every: seconds are for tests; less than one would only flood the log
MAX_ROOT_MB = 1e9  # a petabyte


class NotDelivered(BackupError):
    """The test notification was not accepted by a target."""


def register(sub):
    p = sub.add_parser(
        "scheduler", help="run the backup scheduler in the foreground (one active per backup root)",
        description="Runs interval backups and the weekly clean-up until SIGTERM/SIGINT. "
                    "Several may run, on several hosts sharing the MongoDB: one is active, the others stand by.")
    p.add_argument("--every", metavar="DURATION",
                   help="backup interval for THIS process only, e.g. 30s, 10m, 1h (not saved; "
                        "default: the saved interval, see --set-interval)")
    p.add_argument("--lease", type=number_type("--lease", MIN_LEASE_S, MAX_LEASE_S, unit="seconds"), default=30.0,
                   metavar="SECONDS",
                   help="lease period: a standby takes over at most this long after the active "
                        f"scheduler stops renewing (default 30; {MIN_LEASE_S:g} to {MAX_LEASE_S:g})")
    p.add_argument("--metrics-port", type=number_type("--metrics-port", 0, 65535, integer=True), metavar="PORT",
                   help="serve Prometheus metrics on http://HOST:PORT/metrics while running (default: off)")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address for --metrics-port (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--check", action="store_true",
                   help="run the auto-backup check once and exit: back up only if the last backup "
                        "is older than the interval (a failure is notified, as for cron)")
    p.add_argument("--test-notify", action="store_true",
                   help="send a test notification to the BACKUP_NOTIFY targets and exit")
    p.add_argument("--set-interval", type=number_type("--set-interval", MIN_INTERVAL_HOURS, MAX_INTERVAL_HOURS,
                                                      unit="hours"), metavar="HOURS",
                   help="save the backup interval (0.1 to 168 hours) for every scheduler and exit")
    p.add_argument("--retention", metavar="AGE",
                   help="save the retention period (e.g. 7d) for every scheduler and exit")
    p.add_argument("--max-root-mb", type=number_type("--max-root-mb", 0, MAX_ROOT_MB, unit="MB"), metavar="MB",
                   help="save the backup root size above which a clean-up follows each backup "
                        "(0: no limit) and exit")
    p.add_argument("--drill-every", metavar="PERIOD",
                   help="save how often the scheduler runs a restore drill (e.g. 7d, 1d; off: never; "
                        "default 7d) and exit")
    p.set_defaults(handler=run)
    return p


def _say(text: str) -> None:
    print(printable(text), file=sys.stderr, flush=True)


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped (messages may quote collection names and errors)."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


def interval_text(hours: float) -> str:
    """``0.1 h (6m 0s)``: hours as the dashboard and ``--set-interval`` say them, and the clock time."""
    return f"{round(hours, 3):g} h ({format_duration(hours * 3600)})"


@dataclass
class Stopped:
    """What the foreground scheduler prints when it has stopped."""

    interval_hours: float
    last_run: dict | None

    def to_json(self) -> dict:
        return {"stopped": True, "interval_hours": self.interval_hours, "last_run": self.last_run}

    def to_text(self) -> str:
        last = self.last_run
        if not last:
            return "scheduler stopped (no scheduled backup has run yet)"
        outcome = last.get("outcome")
        what = (f"backup {last.get('backup_id')}" if outcome == "ok"
                else f"{outcome}{': ' + str(last.get('error')) if last.get('error') else ''}")
        return f"scheduler stopped; last backup run at {last.get('started_at')}: {what}"


def run(args, settings):
    if args.test_notify:
        result = notify.send_test(settings)
        if not result.sent:
            raise NotDelivered(result.to_text(), payload=result.to_json())
        return result
    if args.set_interval is not None or args.retention is not None or args.max_root_mb is not None \
            or args.drill_every is not None:
        config = load_config(settings)
        if args.set_interval is not None:
            config.interval_hours = args.set_interval
        if args.retention is not None:
            config.retention_days = parse_duration(args.retention, what="--retention").total_seconds() / 86400
        if args.max_root_mb is not None:  # 0 to MAX_ROOT_MB (the type refused nan, inf, negative)
            config.max_root_bytes = int(args.max_root_mb * 1024 * 1024) or None
        if args.drill_every is not None:
            config.drill_every_days = (0.0 if args.drill_every.strip().lower() in ("off", "0", "never") else
                                       parse_duration(args.drill_every, what="--drill-every",
                                                      default_unit="d").total_seconds() / 86400)
        return save_config(settings, config, user=settings.user).to_json()
    if args.check:
        return auto_backup_check(settings, user=settings.user, unattended=True)
    interval = parse_duration(args.every, what="--every", minimum_s=MIN_EVERY_S) if args.every else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])

    def on_state(state, info):
        if state == "active":
            _say(f"scheduler active: backing up {info['database']} every {interval_text(info['interval_hours'])} "
                 f"into {info['root']} (fencing token {info.get('token')})")
        elif state == "standby":
            holder = info.get("holder") or {}
            _say(f"scheduler standby: pid {holder.get('pid', '?')} on {holder.get('host', '?')} is active")
        elif state == "stopped":
            _say("scheduler stopped")

    service = SchedulerService(settings, interval=interval, lease_seconds=args.lease, on_state=on_state)
    server = None
    if args.metrics_port is not None:
        from ..metrics import serve  # late: only a scheduler with metrics imports prometheus_client

        try:
            server = serve(settings, lambda: service.is_active, host=args.metrics_host, port=args.metrics_port)
        except OSError as exc:
            raise StorageError(f"cannot serve metrics on {args.metrics_host}:{args.metrics_port}: "
                               f"{exc.strerror or exc}") from None
        _say(f"metrics: {server.url}")
    try:
        service.run_forever()
    finally:
        if server is not None:
            server.close()
    status = scheduler_status(settings)
    return Stopped(status["interval_hours"], status["last_run"])
