"""``list``: committed backups, newest first; encrypted ones whose key is missing are listed as such."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..context import open_store


@dataclass
class ListResult:
    backups: list
    unreadable: list[str] = field(default_factory=list)
    locked: list[dict] = field(default_factory=list)
    root: str = ""

    def to_json(self) -> dict:
        return {"root": self.root, "backups": [b.to_json() for b in self.backups], "locked": self.locked,
                "unreadable": self.unreadable}

    def to_text(self) -> str:
        if not self.backups and not self.locked:
            lines = [f"no backups in {self.root}"]
        else:
            lines = [f"{'BACKUP ID':<22} {'DAY':<10} {'TRIGGER':<10} {'DOCS':>8} {'BYTES':>10}  "
                     f"{'ENCRYPTED':<18} DATABASE"]
            for b in self.backups:
                enc = f"key {b.key_fingerprint}" if b.encrypted else "no"
                lines.append(f"{b.backup_id:<22} {b.day:<10} {b.trigger:<10} {b.total_documents:>8} "
                             f"{b.total_bytes:>10}  {enc:<18} {b.database}")
            for b in self.locked:
                lines.append(f"{b['backup_id']:<22} {b['day']:<10} {'?':<10} {'?':>8} {'?':>10}  "
                             f"key {b['key_fingerprint']} (not configured: cannot be read)")
        lines += [f"unreadable: {u}" for u in self.unreadable]
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
    return ListResult(backups, errors, locked, store.url)
