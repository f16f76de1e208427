"""Notifications for unattended runs: one message when something starts failing, one when it works again.

``BACKUP_NOTIFY`` (env or ``.streamlit/secrets.toml``) holds one or more
apprise URLs, separated by spaces or commas (``json://host/path``,
``mailto://user:pass@example.com``, ``slack://...``, ``tgram://...``; see
apprise's documentation). Without it nothing is sent, but streaks are still
tracked, so configuring it later mid-streak still gets the next failure told.

``event(settings, kind, ok=...)`` is the one entry: the scheduler calls it
after each unattended run (``kind``: ``backup``, ``cleanup``, ``database``
for an unreachable database, ``mirror``), every restore drill, attended
or not, after it ran (``drill``: a backup that did not restore is news
whoever asked), and ``data`` for a backup that succeeded but found the
database empty or much smaller than its previous backup (``ok=False`` with
the backup's warnings, ``ok=True`` once a backup looks normal again). Per
backup root, database
and kind a *streak* document in the metadata database (``notify_state``)
says whether that kind is failing, since when, how often, and whether the
failure was announced:

- the first failure of a streak sends one message (what failed, since when,
  the error, the last good backup); later failures of the same streak send
  nothing. Claiming the announcement is atomic, so two hosts never both send.
- the first success after an announced failure sends one recovery message
  and ends the streak.
- a message that could not be delivered is retried at the next failure.

When the metadata database itself cannot be reached (a database outage), the
streak is kept in this process's memory and merged back when it answers again;
the scheduler only reports an outage from the process that held the lease, so
an outage is told once, not once per standby.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .config import Settings
from .errors import BackupError, DatabaseUnavailable, UsageError
from .locks import owner_record
from .timeutil import format_duration, iso, parse_iso, utc_now

log = logging.getLogger(__name__)

KINDS = {"backup": "Scheduled backup", "cleanup": "Scheduled clean-up", "database": "Database",
         "mirror": "Mirror", "drill": "Restore drill", "data": "Backed-up data"}
# (what a failure says, what its recovery says) where "failed" / "works again" would mislead: a backup of an
# emptied database succeeds, and that is the problem


@dataclass(frozen=True)
class _Wording:
    """How the two messages of one kind of streak read."""

    title_bad: str
    title_ok: str
    bad: str
    ok: str
    count: str    # "after 3 failure(s)"
    last: str     # "Last error was: ..."
    label: str    # "Error: ..."
    since: str    # "Failing since: ..."
    so_far: str   # "(3 failure(s) so far)"
    tail: str


_FAILURE = _Wording("failed", "recovered", "failed", "works again", "failure(s)", "Last error was", "Error",
                    "Failing since", "failure(s)",
                    "One message per failure streak: the next one says when it works again.")
# warning streaks: the backups work, but what they hold looks wrong
_WORDING = {"data": _Wording(
    "needs attention", "normal again", "looks wrong: the database is empty or much smaller than before",
    "looks normal again: a backup holds the data again", "warning(s)", "Last warning was", "Warning", "Since",
    "backup(s)", "One message per streak: the next one says when a backup looks normal again. Clean-up keeps "
    "the newest backup with data of every collection meanwhile.")}
PREFIX = "[MongoDB backup]"


@dataclass
class NotifyResult:
    """What one notification did (also what the dashboard's test button shows)."""

    sent: bool
    event: str                 # "failure", "recovery", "test"
    kind: str
    title: str = ""
    body: str = ""
    targets: list[str] = field(default_factory=list)  # masked: never the secret parts
    error: str | None = None

    def to_json(self) -> dict:
        return {"sent": self.sent, "event": self.event, "kind": self.kind, "title": self.title,
                "body": self.body, "targets": self.targets, "error": self.error}

    def to_text(self) -> str:
        where = ", ".join(self.targets) or "no target"
        if self.sent:
            return f"notification sent to {where}: {self.title}"
        return f"notification NOT delivered to {where}: {self.error or 'unknown reason'}"


# ---------------------------------------------------------------------------- targets and sending

def _apprise(urls: tuple[str, ...]):
    import apprise  # late: only a process that notifies pays for the import

    ap = apprise.Apprise()
    bad = [u for u in urls if not ap.add(u)]
    return ap, bad


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "?"


def describe(settings: Settings) -> dict:
    """Whether notifications are configured, and where they go, without the secret parts of the URLs."""
    urls = settings.notify_urls
    if not urls:
        return {"configured": False, "targets": [], "invalid": []}
    ap, bad = _apprise(urls)
    return {"configured": len(ap) > 0, "targets": list(ap.urls(privacy=True)),
            "invalid": [f"{_scheme(u)}://… (not understood by apprise)" for u in bad]}


def send(settings: Settings, title: str, body: str, kind: str = "info") -> tuple[bool, list[str], str | None]:
    """Send one message to every BACKUP_NOTIFY target: (delivered, masked targets, error)."""
    import apprise

    ap, bad = _apprise(settings.notify_urls)
    targets = list(ap.urls(privacy=True))
    if not len(ap):
        return False, targets, ("BACKUP_NOTIFY is not set" if not settings.notify_urls
                                else "no BACKUP_NOTIFY URL is understood by apprise")
    notify_type = {"failure": apprise.NotifyType.FAILURE, "recovery": apprise.NotifyType.SUCCESS}.get(
        kind, apprise.NotifyType.INFO)
    try:
        ok = bool(ap.notify(body=body, title=title, notify_type=notify_type))
    except Exception as exc:  # noqa: BLE001 - a notification must never break a run
        return False, targets, f"{type(exc).__name__}: {exc}"
    error = None if ok else "at least one target did not accept the message (see the log)"
    if bad:
        error = f"{len(bad)} URL(s) not understood" + (f"; {error}" if error else "")
    return ok, targets, error


def send_test(settings: Settings) -> NotifyResult:
    """The dashboard's and ``scheduler --test-notify``'s test message. ``UsageError`` when not configured."""
    info = describe(settings)
    if not settings.notify_urls:
        raise UsageError("notifications are not configured: set BACKUP_NOTIFY to one or more apprise URLs")
    if not info["configured"]:
        raise UsageError(f"no BACKUP_NOTIFY URL is understood by apprise: {', '.join(info['invalid'])}")
    me = owner_record()
    title = f"{PREFIX} Test notification: {settings.db_name}"
    body = (f"This is a test from the backup of database {settings.db_name} (backup root {_root(settings)}), "
            f"sent from {me['host']} at {iso(utc_now())}. Failed unattended backups and clean-ups, "
            "database outages and their recovery are reported here.")
    ok, targets, error = send(settings, title, body, "test")
    return NotifyResult(ok, "test", "test", title, body, targets, error)


def _root(settings: Settings) -> str:
    from .context import open_store

    try:
        return open_store(settings).url
    except Exception:  # noqa: BLE001
        return str(settings.backup_root)


# ---------------------------------------------------------------------------- streaks

_mem: dict[str, dict] = {}      # streaks kept here while the metadata database cannot be reached
_known: dict[str, dict] = {}    # the last streak document seen in the database, per streak
_mem_guard = threading.Lock()


def _streak_id(settings: Settings, kind: str) -> tuple[str, dict]:
    from .scheduler.metadb import scope_of

    scope = scope_of(settings)
    return f"{scope.id}|{kind}", {**scope.fields(), "kind": kind}


def event(settings: Settings, kind: str, *, ok: bool, error: str | None = None, offline: bool = False,
          details: dict | None = None) -> NotifyResult | None:
    """Track the streak of ``kind``; send a failure or recovery message when one is due. Never raises.

    ``offline``: the caller knows the metadata database is unreachable (keep the
    streak in memory without trying). ``details``: extra lines for the message
    (e.g. ``{"backup": "2026..."}`` for a recovery). Returns what was sent, or None.
    """
    try:
        return _event(settings, kind, ok, error, offline, details or {})
    except Exception:  # noqa: BLE001 - a notification must never break a scheduler
        log.exception("notification of %s failed", kind)
        return None


def _event(settings: Settings, kind: str, ok: bool, error: str | None, offline: bool,
           details: dict) -> NotifyResult | None:
    sid, fields = _streak_id(settings, kind)
    claim = secrets.token_hex(8) if settings.notify_urls else None
    streak = None
    if not offline:
        try:
            streak = (_recover_db if ok else _fail_db)(settings, sid, fields, error, claim)
        except DatabaseUnavailable:
            streak = None
            offline = True
    if offline:
        streak = _recover_mem if ok else _fail_mem
        streak = streak(sid, fields, error, claim)
    if streak is None:
        return None
    title, body = _message(settings, kind, ok, streak, error, details)
    delivered, targets, why = send(settings, title, body, "recovery" if ok else "failure")
    if not delivered:
        log.warning("could not deliver the %s notification of %s: %s", "recovery" if ok else "failure", kind, why)
        if not ok:
            _unclaim(settings, sid, claim)
    return NotifyResult(delivered, "recovery" if ok else "failure", kind, title, body, targets, why)


def _fail_db(settings: Settings, sid: str, fields: dict, error: str | None, claim: str | None) -> dict | None:
    """Count a failure; the streak document when *this* call must announce it, else None."""
    from .scheduler.metadb import NOTIFY, literal, meta

    with meta(settings, "recording a notification streak") as db:
        coll = db[NOTIFY]
        with _mem_guard:
            pending = _mem.pop(sid, None)
        if pending and pending.get("failing"):
            # a streak that began while the database was down continues, announced or not
            try:
                coll.update_one({"_id": sid, "failing": {"$ne": True}},
                                {"$set": {**fields, **{k: v for k, v in pending.items() if k != "_id"}}},
                                upsert=True)
            except DuplicateKeyError:
                pass
        failing = {"$eq": ["$failing", True]}
        announced = {"$and": [failing, {"$eq": ["$notified", True]}]}
        doc = coll.find_one_and_update({"_id": sid}, [{"$set": {
            **{k: literal(v) for k, v in fields.items()},
            "since": {"$cond": [failing, "$since", "$$NOW"]},
            "failures": {"$cond": [failing, {"$add": ["$failures", 1]}, 1]},
            "failing": True,
            "last_error": literal(error),
            "last_failure_at": "$$NOW",
            "notified": {"$or": [announced, literal(claim is not None)]},
            "claim": {"$cond": [announced, "$claim", literal(claim)]},
        }}], upsert=True, return_document=ReturnDocument.AFTER)
    _known[sid] = doc
    return doc if claim is not None and doc.get("claim") == claim else None


def _recover_db(settings: Settings, sid: str, fields: dict, error: str | None, claim: str | None) -> dict | None:
    """End a failing streak; the old streak when its failure had been announced (so recovery is due)."""
    from .scheduler.metadb import NOTIFY, meta

    with meta(settings, "recording a notification streak") as db:
        before = db[NOTIFY].find_one_and_update(
            {"_id": sid, "failing": True},
            [{"$set": {"failing": False, "notified": False, "recovered_at": "$$NOW",
                       "last_streak": {"since": "$since", "failures": "$failures", "last_error": "$last_error"}}}],
            return_document=ReturnDocument.BEFORE)
    _known.pop(sid, None)
    with _mem_guard:
        pending = _mem.pop(sid, None)
    if before and before.get("notified"):
        return before
    if pending and pending.get("failing") and pending.get("notified"):
        return pending  # the outage was announced from memory: its recovery is told now
    return None


def _fail_mem(sid: str, fields: dict, error: str | None, claim: str | None) -> dict | None:
    with _mem_guard:
        doc = _mem.get(sid)
        if doc is None:
            known = _known.get(sid)
            doc = dict(known) if known and known.get("failing") else {"_id": sid, **fields, "failing": False}
            _mem[sid] = doc
        announced = bool(doc.get("failing") and doc.get("notified"))
        if not doc.get("failing"):
            doc.update(failing=True, since=utc_now(), failures=0)
        doc["failures"] = int(doc.get("failures") or 0) + 1
        doc.update(last_error=error, last_failure_at=utc_now())
        if announced or claim is None:
            return None
        doc.update(notified=True, claim=claim)
        return dict(doc)


def _recover_mem(sid: str, fields: dict, error: str | None, claim: str | None) -> dict | None:
    with _mem_guard:
        doc = _mem.pop(sid, None)
    return doc if doc and doc.get("failing") and doc.get("notified") else None


def _unclaim(settings: Settings, sid: str, claim: str | None) -> None:
    """The failure message was not delivered: let the next failure try again."""
    with _mem_guard:
        doc = _mem.get(sid)
        if doc and doc.get("claim") == claim:
            doc["notified"] = False
            return
    from .scheduler.metadb import NOTIFY, meta

    try:
        with meta(settings, "recording a notification streak") as db:
            db[NOTIFY].update_one({"_id": sid, "claim": claim}, {"$set": {"notified": False}})
    except DatabaseUnavailable:
        pass


def streaks(settings: Settings) -> list[dict]:
    """The streak documents of this backup root and database (status, tests)."""
    from .scheduler.metadb import NOTIFY, meta, scope_of

    scope = scope_of(settings)
    with meta(settings) as db:
        return list(db[NOTIFY].find({"root": scope.root, "database": scope.database}, {"claim": 0}))


# ---------------------------------------------------------------------------- messages

def _message(settings: Settings, kind: str, ok: bool, streak: dict, error: str | None,
             details: dict) -> tuple[str, str]:
    what = KINDS.get(kind, kind.capitalize())
    since = _when(streak.get("since"))
    failures = int(streak.get("failures") or 1)
    me = owner_record()
    where = f"database {settings.db_name}, backup root {_root(settings)}"
    w = _WORDING.get(kind, _FAILURE)
    if ok:
        title = f"{PREFIX} {what} {w.title_ok}: {settings.db_name}"
        lines = [f"{what} {w.ok} ({where}) after {failures} {w.count} since {since}"
                 + _for_how_long(streak.get("since")) + "."]
        if streak.get("last_error"):
            lines.append(f"{w.last}: {streak['last_error']}")
    else:
        title = f"{PREFIX} {what} {w.title_bad}: {settings.db_name}"
        lines = [f"{what} {w.bad} ({where}).", f"{w.label}: {error or streak.get('last_error') or 'unknown'}",
                 f"{w.since}: {since} ({failures} {w.so_far} so far). {w.tail}"]
    lines += [f"{k.replace('_', ' ').capitalize()}: {v}" for k, v in details.items() if v is not None]
    lines.append(f"Last good backup: {_last_good(settings)}")
    lines.append(f"Reported by {me['host']} (pid {me['pid']}) at {iso(utc_now())}.")
    return title, "\n".join(lines)


def _when(value) -> str:
    return iso(parse_iso(value)) or "unknown"


def _for_how_long(since) -> str:
    when = parse_iso(since)
    if when is None:
        return ""
    return f" ({format_duration((utc_now() - when).total_seconds())})"


def _last_good(settings: Settings) -> str:
    from .context import open_store

    try:
        backups = open_store(settings).list_backups()
    except (BackupError, OSError) as exc:
        return f"unknown (cannot list the backup root: {exc})"
    if not backups:
        return "none"
    b = backups[0]
    age = format_duration((utc_now() - b.created).total_seconds())
    return f"{b.backup_id} ({b.trigger}, created {b.created_at}, {age} ago)"
