"""``list``: committed backups, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..context import open_store


@dataclass
class ListResult:
    backups: list
    unreadable: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"backups": [b.to_json() for b in self.backups], "unreadable": self.unreadable}

    def to_text(self) -> str:
        if not self.backups:
            lines = ["no backups"]
        else:
            lines = [f"{'BACKUP ID':<22} {'DAY':<10} {'TRIGGER':<10} {'DOCS':>8} {'BYTES':>10}  DATABASE"]
            for b in self.backups:
                lines.append(f"{b.backup_id:<22} {b.day:<10} {b.trigger:<10} {b.total_documents:>8} "
                             f"{b.total_bytes:>10}  {b.database}")
        lines += [f"unreadable: {u}" for u in self.unreadable]
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("list", help="list backups, newest first")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    errors: list[str] = []
    backups = open_store(settings).list_backups(errors=errors)
    return ListResult(backups, errors)
