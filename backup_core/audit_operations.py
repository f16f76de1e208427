"""The audit log read as operations: one row per backup, restore, clean-up, login..., with its outcome.

The log itself stays what it is (``audit``): an operation writes a
``started`` entry before it touches anything and an outcome entry when it
ends, both carrying the operation's id (``op``). People want one line per
operation: ``operations`` pairs them (newest first), keeps both entries for
the details, and says ``interrupted`` for one whose process died before its
outcome, ``running`` for one still under way. ``actions`` lists every action
the log holds, so a filter offers each of them (whatever commands a version
added) and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .audit.logs import AuditLog

# fields of the chain and of the bookkeeping that pairs entries: not details for people
BOOKKEEPING = frozenset({"seq", "prev", "hash", "kid", "mac", "op", "parent", "host", "pid", "pid_started",
                         "unfinished", "interrupted", "at", "user", "action", "outcome"})


@dataclass
class AuditOperation:
    """One operation (or a single entry without one, like a login): newest entry first in ``entries``."""

    at: str  # when it ended (its outcome entry), or started when it has not ended
    started_at: str | None
    user: str
    action: str
    outcome: str  # ok, error, refused, interrupted, running (or the single entry's outcome)
    seq: int | None  # the newest entry's sequence number: picks the row
    entries: list[dict] = field(default_factory=list)

    @property
    def details(self) -> dict:
        """What the entries say besides the bookkeeping, the outcome entry's values winning."""
        out: dict = {}
        for e in reversed(self.entries):  # oldest first, so the outcome's values overwrite the start's
            out.update({k: v for k, v in e.items() if k not in BOOKKEEPING and v not in (None, "", [], {})})
        return out

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.entries if isinstance(e.get("seq"), int)]


def _outcome(entry: dict) -> str:
    if entry.get("outcome") == "started" and entry.get("unfinished"):
        return "interrupted" if entry.get("interrupted") else "running"
    return str(entry.get("outcome") or "")


def operations(entries: list[dict]) -> list[AuditOperation]:
    """``AuditLog.read``'s entries (newest first) as operations, newest first."""
    out: list[AuditOperation] = []
    by_op: dict[str, AuditOperation] = {}
    for e in entries:
        op = e.get("op") if isinstance(e.get("op"), str) else None
        held = by_op.get(op) if op else None
        if held is not None:  # the older entry of an operation already listed: its start
            held.entries.append(e)
            if e.get("outcome") == "started":
                held.started_at = e.get("at")
            continue
        row = AuditOperation(at=str(e.get("at") or ""), started_at=e.get("at") if e.get("outcome") == "started"
                             else None, user=str(e.get("user") or ""), action=str(e.get("action") or ""),
                             outcome=_outcome(e), seq=e.get("seq") if isinstance(e.get("seq"), int) else None,
                             entries=[e])
        out.append(row)
        if op:
            by_op[op] = row
    return out


def actions(log: AuditLog) -> list[str]:
    """Every action the log holds, sorted."""
    return sorted({str(e["action"]) for e in log.read(None) if e.get("action")})


__all__ = ["AuditOperation", "operations", "actions", "BOOKKEEPING"]
