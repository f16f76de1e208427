"""The schedule: interval, retention, size limit, on/off; saved for every scheduler of a backup root.

``<root>/.scheduler/config.json``, written by the dashboard or ``scheduler
--set-interval``; the active scheduler notices a change at its next lease
renewal. An invalid file falls back to the defaults rather than stopping
unattended backups.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from pathlib import Path

from .. import audit
from ..errors import StorageError, UsageError
from ..fsutil import atomic_write

log = logging.getLogger(__name__)

SCHEDULER_DIR = ".scheduler"
CONFIG_FILE = "config.json"
MIN_INTERVAL_HOURS = 0.1
MAX_INTERVAL_HOURS = 168.0


def scheduler_dir(root) -> Path:
    return Path(root) / SCHEDULER_DIR


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class ScheduleConfig:
    interval_hours: float = 1.0
    retention_days: float = 7.0
    max_root_bytes: int | None = None
    enabled: bool = True

    def to_json(self) -> dict:
        return asdict(self)

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
    return ScheduleConfig(interval_hours=interval, retention_days=retention,
                          max_root_bytes=max_bytes, enabled=bool(config.enabled))


def load_config(root) -> ScheduleConfig:
    """The persisted schedule, or the defaults when none was saved (or the file is unreadable)."""
    path = scheduler_dir(root) / CONFIG_FILE
    data = read_json(path) or {}
    known = {f.name for f in fields(ScheduleConfig)}
    try:
        return validate(ScheduleConfig(**{k: v for k, v in data.items() if k in known}))
    except UsageError as exc:
        # a hand-edited, invalid file must not stop unattended backups: fall back to defaults
        log.warning("ignoring invalid scheduler config in %s: %s", path, exc)
        return ScheduleConfig()


def save_config(root, config: ScheduleConfig, user: str = "unknown") -> ScheduleConfig:
    """Validate and persist; the active scheduler picks the change up at its next lease renewal."""
    config = validate(config)
    try:
        atomic_write(scheduler_dir(root) / CONFIG_FILE, json.dumps(config.to_json(), indent=2))
    except OSError as exc:
        raise StorageError(f"cannot save the scheduler config in {scheduler_dir(root)}: {exc.strerror}") from None
    audit.record(Path(root), user=user, action="scheduler-config", **config.to_json())
    return config
