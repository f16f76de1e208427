"""``audit [--limit N] [--action A] [--user U] [--outcome O]``: the audit log, newest first."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import audit
from ..context import open_store
from ..errors import UsageError


@dataclass
class AuditListing:
    entries: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"entries": self.entries}

    def to_text(self) -> str:
        if not self.entries:
            return "no audit entries"
        lines = []
        skip = {"at", "user", "action", "outcome"}
        for e in self.entries:
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in skip and v not in (None, "", [], {}))
            lines.append(f"{e.get('at')}  {e.get('user')}  {e.get('action')}  {e.get('outcome')}"
                         + (f"  {extra}" if extra else ""))
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("audit", help="show the audit log, newest first")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N entries (default 100)")
    p.add_argument("--action", help="only this action (backup, restore, cleanup, login, ...)")
    p.add_argument("--user", help="only entries of this user")
    p.add_argument("--outcome", choices=("ok", "error", "refused"), help="only this outcome")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    store = open_store(settings)
    flt = audit.AuditFilter(action=args.action, user=args.user, outcome=args.outcome)
    return AuditListing(audit.read(store.root, args.limit, flt))
