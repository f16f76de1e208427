"""``/metrics`` of the headless scheduler, in the Prometheus text format (``prometheus_client``).

``scheduler --metrics-port PORT [--metrics-host HOST]`` serves it (off by
default; 127.0.0.1 unless told otherwise). Values are read at scrape time from
the state every scheduler shares (``scheduler.scheduler_status``: the
metadata database), so a standby reports the same last success as the active
one and any of them can be scraped; only ``backup_core_lease_held`` is about
the scraped process itself. Every series carries a ``database`` label.

| metric | type | meaning |
|---|---|---|
| ``backup_core_up`` | gauge | 1 when the metadata database answered this scrape |
| ``backup_core_last_success_timestamp_seconds`` | gauge | end of the last successful scheduler backup (unix s; 0: never) |
| ``backup_core_last_run_duration_seconds`` | gauge | duration of the last backup run, successful or not |
| ``backup_core_last_backup_size_bytes`` | gauge | bytes of the last successful backup |
| ``backup_core_backups_total`` | counter | successful backup runs |
| ``backup_core_backup_failures_total`` | counter | failed backup runs |
| ``backup_core_cleanup_failures_total`` | counter | failed clean-ups |
| ``backup_core_consecutive_failures`` | gauge | failed backup runs since the last success |
| ``backup_core_backup_interval_seconds`` | gauge | the interval the active scheduler uses |
| ``backup_core_next_run_timestamp_seconds`` | gauge | next scheduled backup (unix s), when known |
| ``backup_core_scheduler_enabled`` | gauge | 1 unless automatic backups are switched off |
| ``backup_core_lease_held`` | gauge | 1 when THIS process holds the scheduler lease |
| ``backup_core_lease_holder_info`` | info | the holder: ``owner``, ``host``, ``pid``, ``token`` |
| ``backup_core_drill_last_success_timestamp_seconds`` | gauge | end of the last restore drill that passed (unix s; 0: never) |
| ``backup_core_drill_last_success_duration_seconds`` | gauge | how long that drill took in all |
| ``backup_core_drill_last_success_restore_seconds`` | gauge | its time to restore (read, decode, write) |
| ``backup_core_drill_last_result`` | gauge | 1 when the last restore drill passed, 0 when it failed (absent: never) |

The drill series come from ``drill_results`` (every drill: the scheduler's,
the CLI's, the dashboard's), like the others from the shared state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from .config import Settings
from .timeutil import parse_iso

log = logging.getLogger(__name__)

PREFIX = "backup_core"


class SchedulerCollector(Collector):
    """Reads the shared scheduler status at each scrape; ``holds_lease`` answers for this process."""

    def __init__(self, settings: Settings, holds_lease: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.holds_lease = holds_lease

    def collect(self) -> Iterator[Metric]:
        from .scheduler import scheduler_status  # late: the scheduler imports a lot

        status = scheduler_status(self.settings)
        db = self.settings.db_name
        labels = ["database"]

        def gauge(name: str, doc: str, value) -> GaugeMetricFamily:
            g = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            if value is not None:
                g.add_metric([db], float(value))
            return g

        def counter(name: str, doc: str, value) -> CounterMetricFamily:
            c = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)
            c.add_metric([db], float(value or 0))
            return c

        up = bool(status.get("available"))
        yield gauge("up", "1 when the metadata database answered this scrape", 1 if up else 0)
        yield gauge("lease_held", "1 when this process holds the scheduler lease", 1 if self.holds_lease() else 0)
        if not up:
            return  # unknown is not zero: no stale or made-up values
        yield gauge("last_success_timestamp_seconds",
                    "end of the last successful scheduler backup, unix seconds (0: never)",
                    status.get("last_success_unix") or 0)
        yield gauge("last_run_duration_seconds", "duration of the last backup run, successful or not",
                    status.get("last_duration_s"))
        yield gauge("last_backup_size_bytes", "bytes of the last successful backup", status.get("last_backup_bytes"))
        yield counter("backups", "successful backup runs of the scheduler", status.get("backups_total"))
        yield counter("backup_failures", "failed backup runs of the scheduler", status.get("failures_total"))
        yield counter("cleanup_failures", "failed clean-ups of the scheduler", status.get("cleanup_failures_total"))
        yield gauge("consecutive_failures", "failed backup runs since the last success",
                    status.get("consecutive_failures"))
        yield gauge("backup_interval_seconds", "the backup interval the active scheduler uses",
                    (status.get("interval_hours") or 0) * 3600)
        nxt = parse_iso(status.get("next_run"))
        yield gauge("next_run_timestamp_seconds", "next scheduled backup, unix seconds",
                    nxt.timestamp() if nxt else None)
        yield gauge("scheduler_enabled", "1 unless automatic backups are switched off",
                    1 if status.get("enabled") else 0)
        info = InfoMetricFamily(f"{PREFIX}_lease_holder", "the scheduler that holds the lease",
                                labels=labels)
        owner = status.get("owner")
        if owner:
            info.add_metric([db], {"owner": str(owner.get("owner")), "host": str(owner.get("host")),
                                   "pid": str(owner.get("pid")), "token": str(owner.get("token"))})
        yield info
        yield from self._drill(gauge)

    def _drill(self, gauge) -> Iterator[Metric]:
        from .drill_results import summary

        drills = summary(self.settings)
        if not drills.get("available"):
            return
        passed = drills.get("last_success") or {}
        last = drills.get("last")
        yield gauge("drill_last_success_timestamp_seconds",
                    "end of the last restore drill that passed, unix seconds (0: never)",
                    drills.get("last_success_unix") or 0)
        yield gauge("drill_last_success_duration_seconds", "how long the last restore drill that passed took",
                    passed.get("duration_s"))
        yield gauge("drill_last_success_restore_seconds",
                    "time to restore (read, decode, write) of the last restore drill that passed",
                    passed.get("restore_s"))
        yield gauge("drill_last_result", "1 when the last restore drill passed, 0 when it failed",
                    None if last is None else (1 if last.get("ok") else 0))


@dataclass
class MetricsServer:
    host: str
    port: int
    _server: object
    _thread: object

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()  # type: ignore[attr-defined]
        self._server.server_close()  # type: ignore[attr-defined]


def serve(settings: Settings, holds_lease: Callable[[], bool] = lambda: False, *, host: str = "127.0.0.1",
          port: int = 0) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` (0: a free port) in a daemon thread."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SchedulerCollector(settings, holds_lease))
    server, thread = start_http_server(port, addr=host, registry=registry)
    return MetricsServer(host, server.server_address[1], server, thread)
