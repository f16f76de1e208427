"""The schedule: interval, retention, size limit, on/off, restore drills; one for every scheduler of a backup root.

Kept in the metadata database (``scheduler_config``, one document per backup
root and database, see ``metadb``), so every scheduler on every host, the
dashboard and the CLI see the same schedule; written by the dashboard or
``scheduler --set-interval``; the active scheduler notices a change at its
next lease renewal. A stored document that does not validate falls back to
the defaults rather than stopping unattended backups.

Older versions kept the schedule in ``<root>/.scheduler/config.json`` (and the
run history next to it). The first read of a scope without a stored schedule
imports them once and renames them to ``*.migrated``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from pathlib import Path

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from .. import audit
from ..archive import ArchiveRule, check_rules
from ..config import Settings
from ..context import open_store
from ..errors import BackupError, UsageError
from ..retention import DEFAULT_PRE_WRITE_DAYS, DEFAULT_SAFETY_DAYS, RetentionPolicy
from ..timeutil import now_iso
from .metadb import CONFIG, HISTORY, Scope, as_settings, meta, scope_of

log = logging.getLogger(__name__)

MIN_INTERVAL_HOURS = 0.1
DEFAULT_DRILL_DAYS = 7.0
MAX_INTERVAL_HOURS = 168.0
LEGACY_DIR = ".scheduler"  # where versions before the metadata database kept the scheduler's files


@dataclass
class ScheduleConfig:
    interval_hours: float = 1.0
    retention_days: float = 7.0
    max_root_bytes: int | None = None
    enabled: bool = True
    # a tiered retention policy (RetentionPolicy.to_json()); None: keep everything younger than retention_days
    policy: dict | None = None
    # archive rules run after each scheduled backup (archive.ArchiveRule.to_json(), see archive_rules.py)
    archive_rules: list = field(default_factory=list)
    # a restore drill (the newest backup and one older one) every this many days; 0: no drills
    drill_every_days: float = DEFAULT_DRILL_DAYS

    def to_json(self) -> dict:
        return asdict(self)

    def rules(self) -> list[ArchiveRule]:
        return [ArchiveRule.from_json(r) for r in self.archive_rules]

    def retention_policy(self) -> RetentionPolicy:
        """What the scheduler's clean-ups keep."""
        if self.policy:
            return RetentionPolicy.from_json(self.policy)
        return RetentionPolicy(older_than=self.retention)

    @property
    def interval(self) -> timedelta:
        return timedelta(hours=self.interval_hours)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)


def validate(config: ScheduleConfig) -> ScheduleConfig:
    try:
        interval = float(config.interval_hours)
        retention = float(config.retention_days)
    except (TypeError, ValueError):
        raise UsageError("the backup interval and the retention period must be numbers") from None
    if not (MIN_INTERVAL_HOURS <= interval <= MAX_INTERVAL_HOURS):
        raise UsageError(f"backup interval must be between {MIN_INTERVAL_HOURS:g} and "
                         f"{MAX_INTERVAL_HOURS:g} hours, got {config.interval_hours!r}")
    if not retention > 0:
        raise UsageError(f"retention period must be positive, got {config.retention_days!r} days")
    max_bytes = config.max_root_bytes
    if max_bytes is not None:
        try:
            max_bytes = int(max_bytes)
        except (TypeError, ValueError):
            raise UsageError(f"maximum backup root size must be a number of bytes, got {max_bytes!r}") from None
        if max_bytes <= 0:
            raise UsageError(f"maximum backup root size must be positive, got {max_bytes!r}")
    try:
        drill_days = float(config.drill_every_days)
    except (TypeError, ValueError):
        raise UsageError(f"the drill period must be a number of days, got {config.drill_every_days!r}") from None
    if not 0 <= drill_days <= 3660:  # also refuses nan
        raise UsageError(f"the drill period must be 0 (no drills) to 3660 days, got {config.drill_every_days!r}")
    policy = config.policy
    if policy is not None:
        if isinstance(policy, RetentionPolicy):
            policy = policy.to_json()
        try:
            policy = RetentionPolicy.from_json(dict(policy)).to_json()
        except (TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"invalid retention policy: {exc}") from None
    rules = [r.to_json() for r in check_rules(config.archive_rules or [])]
    return ScheduleConfig(interval_hours=interval, retention_days=retention,
                          max_root_bytes=max_bytes, enabled=bool(config.enabled), policy=policy,
                          archive_rules=rules, drill_every_days=drill_days)


def _from_doc(doc: dict | None, where: str) -> ScheduleConfig:
    known = {f.name for f in fields(ScheduleConfig)}
    try:
        return validate(ScheduleConfig(**{k: v for k, v in (doc or {}).items() if k in known}))
    except (UsageError, TypeError) as exc:
        # a hand-edited, invalid document must not stop unattended backups: fall back to defaults
        log.warning("ignoring invalid scheduler config in %s: %s", where, exc)
        return ScheduleConfig()


def read_config(db: Database, scope: Scope, settings: Settings) -> ScheduleConfig:
    """The stored schedule of ``scope`` (importing a legacy config.json once), or the defaults."""
    doc = db[CONFIG].find_one({"_id": scope.id})
    if doc is None:
        doc = _migrate_legacy(db, scope, settings)
    return _from_doc(doc, f"{db.name}.{CONFIG}")


def load_config(settings: "Settings | str | Path") -> ScheduleConfig:
    """The saved schedule, or the defaults when none was saved. Raises ``DatabaseUnavailable``."""
    settings = as_settings(settings)
    with meta(settings, "reading the scheduler config") as db:
        return read_config(db, scope_of(settings), settings)


def load_retention_policy(settings: "Settings | str | Path") -> RetentionPolicy:
    """The clean-up policy saved for the scheduler (``cleanup`` with no rule uses it too)."""
    return load_config(settings).retention_policy()


def effective_policy(settings: Settings, policy: RetentionPolicy | None = None) -> RetentionPolicy:
    """``policy``; when none is given, the one saved for the scheduler (the default when it cannot be read)."""
    if policy is not None:
        return policy
    try:
        return load_retention_policy(settings)
    except BackupError:  # the metadata database is down: the default rule applies
        return RetentionPolicy()


def save_retention_policy(settings: Settings, policy: RetentionPolicy, user: str = "unknown") -> ScheduleConfig:
    config = load_config(settings)
    config.policy = policy.to_json()
    if policy.older_than is not None and not policy.tiered and policy.safety_days == DEFAULT_SAFETY_DAYS \
            and policy.pre_write_days == DEFAULT_PRE_WRITE_DAYS and policy.archive_days is None:
        # the plain "older than" rule is the classic retention_days (which older versions read)
        config.policy, config.retention_days = None, policy.older_than.total_seconds() / 86400
    return save_config(settings, config, user=user)


def save_config(settings: "Settings | str | Path", config: ScheduleConfig, user: str = "unknown") -> ScheduleConfig:
    """Validate and store; the active scheduler picks the change up at its next lease renewal."""
    settings = as_settings(settings)
    config = validate(config)
    scope = scope_of(settings)
    with meta(settings, "saving the scheduler config") as db:
        db[CONFIG].update_one({"_id": scope.id},
                              {"$set": {**config.to_json(), **scope.fields(), "updated_by": user,
                                        "updated_at": now_iso()}}, upsert=True)
    audit.record(open_store(settings).audit_log(), user=user, action="scheduler-config", **config.to_json())
    return config


# ---------------------------------------------------------------------------- one-time import

def _legacy_dir(settings: Settings) -> Path | None:
    if "://" in str(settings.backup_root):
        return None  # an object store never had these files
    return Path(settings.backup_root) / LEGACY_DIR


def _migrate_legacy(db: Database, scope: Scope, settings: Settings) -> dict | None:
    """Import ``<root>/.scheduler/config.json`` (and ``history.jsonl``) once; None when there is none."""
    folder = _legacy_dir(settings)
    if folder is None:
        return None
    path = folder / "config.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    config = _from_doc(data if isinstance(data, dict) else {}, str(path))
    doc = {"_id": scope.id, **config.to_json(), **scope.fields(), "updated_by": "migration",
           "updated_at": now_iso(), "migrated_from": str(path)}
    try:
        db[CONFIG].insert_one(doc)
    except DuplicateKeyError:
        return db[CONFIG].find_one({"_id": scope.id})  # another process imported it just now
    imported = _import_history(db, scope, folder / "history.jsonl")
    for name in ("config.json", "history.jsonl"):
        try:
            (folder / name).rename(folder / f"{name}.migrated")
        except OSError:
            pass
    try:
        audit.record(open_store(settings).audit_log(), user="scheduler", action="scheduler-config",
                     migrated_from=str(path), history_runs=imported, **config.to_json())
    except Exception as exc:  # noqa: BLE001 - the import itself succeeded
        log.warning("cannot audit the scheduler config import: %s", exc)
    log.warning("imported the scheduler config%s from %s into %s.%s", " and history" if imported else "",
                folder, db.name, CONFIG)
    return doc


def _import_history(db: Database, scope: Scope, path: Path) -> int:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return 0
    runs = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("started_at"):
            entry.pop("_id", None)
            runs.append({**entry, "scope": scope.id})
    if runs:
        db[HISTORY].insert_many(runs, ordered=False)
    return len(runs)
