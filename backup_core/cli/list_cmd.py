"""``list``: committed backups, newest first; encrypted ones whose key is missing are listed as such.

Each backup carries its last restore drill (``drill``: when, passed or
failed, how long; None when never drilled), read from the metadata database;
when that cannot be reached the list is still shown and ``drill_error`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import drill_results
from ..context import open_store
from ..errors import BackupError


@dataclass
class ListResult:
    backups: list
    unreadable: list[str] = field(default_factory=list)
    locked: list[dict] = field(default_factory=list)
    root: str = ""
    drills: dict[str, dict] = field(default_factory=dict)  # backup id -> its last drill
    drill_error: str | None = None

    def to_json(self) -> dict:
        return {"root": self.root, "backups": [{**b.to_json(), "drill": self.drills.get(b.backup_id)}
                                               for b in self.backups],
                "locked": self.locked, "unreadable": self.unreadable, "drill_error": self.drill_error}

    def _drill_mark(self, backup_id: str) -> str:
        d = self.drills.get(backup_id)
        if d is None:
            return "-"
        return f"{'passed' if d.get('ok') else 'FAILED'} {str(d.get('at') or '')[:10]}"

    def to_text(self) -> str:
        if not self.backups and not self.locked:
            lines = [f"no backups in {self.root}"]
        else:
            lines = [f"{'BACKUP ID':<22} {'DAY':<10} {'TRIGGER':<10} {'DOCS':>8} {'BYTES':>10}  "
                     f"{'ENCRYPTED':<18} {'DATABASE':<16} LAST DRILL"]
            for b in self.backups:
                enc = f"key {b.key_fingerprint}" if b.encrypted else "no"
                lines.append(f"{b.backup_id:<22} {b.day:<10} {b.trigger:<10} {b.total_documents:>8} "
                             f"{b.total_bytes:>10}  {enc:<18} {b.database:<16} {self._drill_mark(b.backup_id)}")
            for b in self.locked:
                lines.append(f"{b['backup_id']:<22} {b['day']:<10} {'?':<10} {'?':>8} {'?':>10}  "
                             f"key {b['key_fingerprint']} (not configured: cannot be read)")
        lines += [f"unreadable: {u}" for u in self.unreadable]
        if self.drill_error:
            lines.append(f"drill results unknown: {self.drill_error}")
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("list", help="list backups, newest first")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    errors: list[str] = []
    locked: list[dict] = []
    store = open_store(settings)
    backups = store.list_backups(errors=errors, locked=locked)
    result = ListResult(backups, errors, locked, store.url)
    if backups:
        try:
            result.drills = drill_results.last_per_backup(settings)
        except BackupError as exc:  # the metadata database is down: the backups are still worth listing
            result.drill_error = str(exc)
    return result
