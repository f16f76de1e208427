"""``list``: every committed backup, newest first; encrypted ones whose key is missing are marked, in place.

A backup that cannot be read here (its key is not configured) is still a
backup: it is listed at its time (its id), marked locked, with the
fingerprint of the key it needs (``backup_core.listing``). Each backup
carries its last restore drill (``drill``: when, passed or failed, how long;
None when never drilled), read from the metadata database; when that cannot
be reached the list is still shown and ``drill_error`` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import drill_results
from ..context import open_store
from ..errors import BackupError
from ..listing import Listing, is_locked, list_all


@dataclass
class ListResult:
    listing: Listing
    root: str = ""
    drills: dict = field(default_factory=dict)  # backup id -> its last drill
    drill_error: str | None = None

    def to_json(self) -> dict:
        entries = self.listing.entries
        return {"root": self.root,
                "backups": [dict(e.to_json(), locked=is_locked(e), drill=self.drills.get(e.backup_id))
                            for e in entries],
                "locked": [e.to_json() for e in entries if is_locked(e)],
                "needed_keys": self.listing.needed_keys(),
                "unreadable": self.listing.unreadable, "drill_error": self.drill_error}

    def _drill_mark(self, backup_id: str) -> str:
        d = self.drills.get(backup_id)
        if d is None:
            return "-"
        return f"{'passed' if d.get('ok') else 'FAILED'} {str(d.get('at') or '')[:10]}"

    def to_text(self) -> str:
        entries = self.listing.entries
        if not entries:
            lines = [f"no backups in {self.root}"]
        else:
            lines = [f"{'BACKUP ID':<22} {'DAY':<10} {'TRIGGER':<10} {'DOCS':>8} {'BYTES':>10}  "
                     f"{'ENCRYPTED':<22} {'DATABASE':<16} LAST DRILL"]
            for b in entries:
                if is_locked(b):
                    lines.append(f"{b.backup_id:<22} {b.day:<10} {'-':<10} {'-':>8} {'-':>10}  "
                                 f"{'key ' + b.key_fingerprint:<22} (locked: that key is not configured)")
                    continue
                enc = f"key {b.key_fingerprint}" if b.encrypted else "no"
                lines.append(f"{b.backup_id:<22} {b.day:<10} {b.trigger:<10} {b.total_documents:>8} "
                             f"{b.total_bytes:>10}  {enc:<22} {b.database:<16} {self._drill_mark(b.backup_id)}")
        locked = self.listing.locked_text()
        if locked:
            lines.append(locked)
        lines += [f"unreadable: {u}" for u in self.listing.unreadable]
        if self.drill_error:
            lines.append(f"drill results unknown: {self.drill_error}")
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("list", help="list backups, newest first")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    store = open_store(settings)
    result = ListResult(list_all(store), store.url)
    if result.listing.readable:
        try:
            result.drills = drill_results.last_per_backup(settings)
        except BackupError as exc:  # the metadata database is down: the backups are still worth listing
            result.drill_error = str(exc)
    return result
