"""Unattended backups: interval backups and a weekly clean-up, run by exactly one scheduler per root.

- ``config``: the saved schedule (interval, retention, size limit, on/off);
- ``lease``: who may run it (one active scheduler per backup root);
- ``history``: the run history, the active scheduler's state, the status view;
- ``runs``: one scheduled backup, one clean-up, the "back up if due" check;
- ``service``: the APScheduler service that competes for the lease and runs the jobs.

Files live in ``<root>/.scheduler/``: ``config.json``, ``lease.json``,
``state.json`` and ``history.jsonl``.
"""

from .config import (MAX_INTERVAL_HOURS, MIN_INTERVAL_HOURS, ScheduleConfig, load_config, save_config,
                     scheduler_dir)
from .history import (HISTORY_KEEP, HISTORY_MAX_BYTES, append_history, history_entry, run_history,
                      scheduler_status)
from .lease import FileLease, Lease, lease_holder
from .runs import (BACKUP_LOCK_TIMEOUT, SCHEDULER_USER, auto_backup_check, run_cleanup, run_cleanup_now,
                   run_scheduled_backup)
from .service import BACKUP_JOB_ID, CLEANUP_EVERY, CLEANUP_JOB_ID, SchedulerService, ensure_scheduler

__all__ = ["MAX_INTERVAL_HOURS", "MIN_INTERVAL_HOURS", "ScheduleConfig", "load_config", "save_config",
           "scheduler_dir", "HISTORY_KEEP", "HISTORY_MAX_BYTES", "append_history", "history_entry",
           "run_history", "scheduler_status", "FileLease", "Lease", "lease_holder", "BACKUP_LOCK_TIMEOUT",
           "SCHEDULER_USER", "auto_backup_check", "run_cleanup", "run_cleanup_now", "run_scheduled_backup",
           "BACKUP_JOB_ID", "CLEANUP_EVERY", "CLEANUP_JOB_ID", "SchedulerService", "ensure_scheduler"]
