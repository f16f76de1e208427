"""``audit [--limit N] [--action A] [--user U] [--outcome O] [--verify]``: the audit log, newest first.

``--verify`` checks the log instead (its hash chain, the authentication of its
entries when a key is configured, and the anchors of its head kept in every
backup's manifest and in the metadata database) and exits 5 where it is
broken: edited, forged, deleted, emptied or cut (``audit.check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import audit
from ..context import open_store
from .common import number_type


@dataclass
class AuditListing:
    entries: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"entries": self.entries}

    def to_text(self) -> str:
        if not self.entries:
            return "no audit entries"
        lines = []
        skip = {"at", "user", "action", "outcome", "seq", "prev", "hash", "op", "host", "pid", "pid_started"}
        for e in self.entries:
            outcome = "INTERRUPTED" if e.get("interrupted") else e.get("outcome")
            extra = ", ".join(f"{k}={v}" for k, v in e.items() if k not in skip and v not in (None, "", [], {}))
            lines.append(f"{e.get('at')}  {e.get('user')}  {e.get('action')}  {outcome}"
                         + (f"  {extra}" if extra else ""))
        return "\n".join(lines)


def register(sub):
    p = sub.add_parser("audit", help="show the audit log, newest first (--verify: check its hash chain)")
    p.add_argument("--limit", type=number_type("--limit", 1, 10_000_000, integer=True), default=100, metavar="N",
                   help="at most N entries (default 100)")
    p.add_argument("--action", help="only this action (backup, restore, cleanup, login, ...)")
    p.add_argument("--user", help="only entries of this user")
    p.add_argument("--outcome", choices=("started", "ok", "error", "refused", "interrupted"),
                   help="only this outcome (interrupted: started, never finished, process gone)")
    p.add_argument("--verify", action="store_true",
                   help="check that no entry was edited, inserted, removed or forged and that the log was not cut, "
                        "emptied or deleted (exit 5 if so)")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    store = open_store(settings)
    if args.verify:
        return audit.require_intact(audit.check(settings, store))
    log = store.audit_log()
    flt = audit.AuditFilter(action=args.action, user=args.user, outcome=args.outcome)
    return AuditListing(log.read(args.limit, flt))
