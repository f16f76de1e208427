"""``list``: every committed backup, newest first; encrypted ones whose key is missing are marked, in place.

A backup that cannot be read here (its key is not configured) is still a
backup: it is listed at its time (its id), marked locked, with the
fingerprint of the key it needs (``backup_core.listing``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..context import open_store
from ..listing import Listing, is_locked, list_all


@dataclass
class ListResult:
    listing: Listing
    root: str = ""

    def to_json(self) -> dict:
        entries = self.listing.entries
        return {"root": self.root,
                "backups": [dict(e.to_json(), locked=is_locked(e)) for e in entries],
                "locked": [e.to_json() for e in entries if is_locked(e)],
                "needed_keys": self.listing.needed_keys(),
                "unreadable": self.listing.unreadable}

    def to_text(self) -> str:
        entries = self.listing.entries
        if not entries:
            lines = [f"no backups in {self.root}"]
        else:
            lines = [f"{'BACKUP ID':<22} {'DAY':<10} {'TRIGGER':<10} {'DOCS':>8} {'BYTES':>10}  "
                     f"{'ENCRYPTED':<22} DATABASE"]
            for b in entries:
                if is_locked(b):
                    lines.append(f"{b.backup_id:<22} {b.day:<10} {'-':<10} {'-':>8} {'-':>10}  "
                                 f"{'key ' + b.key_fingerprint:<22} (locked: that key is not configured)")
                    continue
                enc = f"key {b.key_fingerprint}" if b.encrypted else "no"
                lines.append(f"{b.backup_id:<22} {b.day:<10} {b.trigger:<10} {b.total_documents:>8} "
                             f"{b.total_bytes:>10}  {enc:<22} {b.database}")
        locked = self.listing.locked_text()
        if locked:
            lines.append(locked)
        lines += [f"unreadable: {u}" for u in self.listing.unreadable]
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("list", help="list backups, newest first")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    store = open_store(settings)
    return ListResult(list_all(store), store.url)
