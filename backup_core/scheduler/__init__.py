"""Unattended backups: interval backups and a weekly clean-up, run by exactly one scheduler per root.

- ``metadb``: where the shared state lives (the metadata database) and whose it is (root + database);
- ``config``: the saved schedule (interval, retention, size limit, on/off);
- ``lease``: who may run it (one active scheduler per backup root and database, on any host),
  with a fencing token checked right before a backup commits;
- ``history``: the run history and statistics, the status view;
- ``runs``: one scheduled backup, one clean-up, the "back up if due" check;
- ``archive_rules``: archive rules run after each scheduled backup, and the archives waiting for an
  admin's confirmation (collection ``archive_pending``);
- ``service``: the APScheduler service that competes for the lease and runs the jobs;
- ``status``: the state and health every front-end shows (``SchedulerStatus``), and the schedule
  as a person types it, checked.

Everything the schedulers of several hosts must agree on is in the metadata
database (``settings.meta_db``): collections ``scheduler_lease``,
``scheduler_config``, ``scheduler_history``, ``scheduler_stats`` (and
``notify_state``, see ``backup_core.notify``). Nothing is kept in the backup
root, so hosts that share only MongoDB and the backup root see one schedule.
"""

from .archive_rules import (PendingArchive, archive_rules, confirm_archive, dismiss_archive, pending_archives,
                            prepare_archive, run_archive_rules, save_archive_rules)
from .config import (MAX_INTERVAL_HOURS, MIN_INTERVAL_HOURS, ScheduleConfig, effective_policy, load_config,
                     load_retention_policy, save_config, save_retention_policy)
from .history import (HISTORY_KEEP, append_history, history_entry, last_run, run_history,
                      scheduler_status)
from .lease import Lease, LeaseLost, MongoLease, SlotTaken, lease_holder
from .metadb import Scope, scope_of
from .runs import (BACKUP_LOCK_TIMEOUT, SCHEDULER_USER, auto_backup_check, push_to_mirror, run_cleanup,
                   run_cleanup_now, run_scheduled_backup)
from .service import (BACKUP_JOB_ID, CLEANUP_EVERY, CLEANUP_JOB_ID, SchedulerService, ensure_scheduler,
                      reload_config)
from .status import LastRun, SchedulerStatus, build_status, schedule_from_form, status_of

__all__ = ["MAX_INTERVAL_HOURS", "MIN_INTERVAL_HOURS", "ScheduleConfig", "load_config", "save_config",
           "load_retention_policy", "save_retention_policy", "effective_policy", "push_to_mirror",
           "HISTORY_KEEP", "append_history", "history_entry", "last_run", "run_history", "scheduler_status",
           "Lease", "LeaseLost", "MongoLease", "SlotTaken", "lease_holder", "Scope", "scope_of",
           "BACKUP_LOCK_TIMEOUT", "SCHEDULER_USER", "auto_backup_check", "run_cleanup", "run_cleanup_now",
           "run_scheduled_backup", "BACKUP_JOB_ID", "CLEANUP_EVERY", "CLEANUP_JOB_ID", "SchedulerService",
           "ensure_scheduler", "reload_config", "PendingArchive", "archive_rules", "save_archive_rules",
           "run_archive_rules", "prepare_archive", "pending_archives", "confirm_archive", "dismiss_archive",
           "LastRun", "SchedulerStatus", "build_status", "schedule_from_form", "status_of"]
