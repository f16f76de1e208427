"""Scheduled archive rules, and the archives that wait for an admin's confirmation.

A rule (``archive.ArchiveRule``, kept in the schedule: ``ScheduleConfig.archive_rules``)
says "archive the documents of COLLECTION whose FIELD is older than N days"
and how it is confirmed:

- ``auto``: after each scheduled backup the scheduler archives them
  (``archive.run_archive``: back up, verify, delete exactly those);
- ``confirm``: after each scheduled backup the scheduler *prepares* the
  archive: it fixes the filter (the age becomes an absolute cutoff date) and
  counts the matching documents. The pending archive waits in the metadata
  database (collection ``archive_pending``, one document per rule of a scope;
  a newer preparation replaces an older one that is still waiting) until an
  admin confirms it, which runs exactly that filter, or dismisses it. Nothing
  is backed up or deleted before the confirmation.

A confirmation claims the pending archive first (``state: running``), so two
admins clicking at once run it once; if the archive fails, it is pending
again with the error. Runs are recorded in the scheduler history (kind
``archive``); failures of unattended runs are notified like failed backups.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from .. import audit, notify
from ..archive import ArchiveOptions, ArchiveResult, ArchiveRule, check_rules, run_archive
from ..config import Settings
from ..context import open_context, open_store
from ..errors import BackupError, UsageError
from ..mongoutil import translate_errors
from ..query import filter_to_json
from ..timeutil import iso, utc_now
from .config import load_config, save_config
from .history import append_history, history_entry
from .metadb import meta, scope_of

log = logging.getLogger(__name__)

PENDING = "archive_pending"


@dataclass
class PendingArchive:
    """A prepared archive waiting for an admin: what it will run, and how many documents matched then."""

    id: str  # the rule's id (collection:field), unique within the backup root and database
    collection: str
    filter: dict  # JSON in the dialect, with the fixed cutoff: exactly what a confirmation runs
    matching: int
    prepared_at: str
    rule: dict
    state: str = "pending"  # "pending", or "running" while a confirmation runs it
    last_error: str | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "collection": self.collection, "filter": self.filter, "matching": self.matching,
                "prepared_at": self.prepared_at, "rule": self.rule, "state": self.state,
                "last_error": self.last_error}

    def describe(self) -> str:
        rule = ArchiveRule.from_json(self.rule)
        return (f"{self.matching} document(s) of {self.collection} with {rule.field} older than "
                f"{rule.older_than_days:g} days (as of {self.prepared_at})")

    @classmethod
    def from_doc(cls, doc: dict) -> "PendingArchive":
        return cls(doc["rule_id"], doc["collection"], doc["filter"], int(doc.get("matching", 0)),
                   doc.get("prepared_at", ""), doc.get("rule", {}), doc.get("state", "pending"),
                   doc.get("last_error"))


@dataclass
class RuleRun:
    """What one rule did after a scheduled backup (the history entry of it)."""

    rule: ArchiveRule
    outcome: str  # "ok", "pending", "nothing", "error"
    result: ArchiveResult | None = None
    pending: PendingArchive | None = None
    error: str | None = None


# ---------------------------------------------------------------------------- the rules


def archive_rules(settings: Settings) -> list[ArchiveRule]:
    """The saved rules (``DatabaseUnavailable`` when the metadata database cannot be read)."""
    return load_config(settings).rules()


def save_archive_rules(settings: Settings, rules: list, *, user: str) -> list[ArchiveRule]:
    """Validate and save the rules with the schedule (audited as a scheduler-config change).

    A pending archive whose rule is gone, or now runs without confirmation, is dropped with it.
    """
    checked = check_rules(rules)
    config = load_config(settings)
    config.archive_rules = [r.to_json() for r in checked]
    saved = save_config(settings, config, user=user).rules()
    waiting = [r.id for r in saved if r.mode == "confirm" and r.enabled]
    with meta(settings, "dropping pending archives of removed rules") as db:
        db[PENDING].delete_many({"scope": scope_of(settings).id, "state": "pending", "rule_id": {"$nin": waiting}})
    return saved


def run_archive_rules(settings: Settings, rules: list[ArchiveRule], *, user: str, trigger: str = "scheduled",
                      unattended: bool = True, now: datetime | None = None) -> list[RuleRun]:
    """Run (``auto``) or prepare (``confirm``) every enabled rule; never raises, records each in the history."""
    runs = []
    for rule in rules:
        if not rule.enabled:
            continue
        started, t0 = utc_now(), time.monotonic()
        try:
            if rule.mode == "auto":
                result = run_archive(settings.with_user(user), ArchiveOptions(
                    rule.collection, rule.query(now or started), confirmed=True, user=user))
                run = RuleRun(rule, "ok" if result.backup_id else "nothing", result=result)
            else:
                pending = prepare_archive(settings, rule, now=now or started)
                run = RuleRun(rule, "pending" if pending else "nothing", pending=pending)
        except Exception as exc:  # noqa: BLE001 - one rule's failure must not stop the others or the scheduler
            if not isinstance(exc, BackupError):
                log.exception("archive rule %s failed", rule.id)
            run = RuleRun(rule, "error", error=str(exc) if isinstance(exc, BackupError)
                          else f"{type(exc).__name__}: {exc}")
        _record(settings, run, trigger, started, time.monotonic() - t0, unattended)
        runs.append(run)
    return runs


def _record(settings: Settings, run: RuleRun, trigger: str, started: datetime, duration: float,
            unattended: bool) -> None:
    r = run.result
    counts = {"archived": r.archived, "deleted": r.deleted, "changed": r.changed} if r else \
        {"matching": run.pending.matching} if run.pending else {}
    append_history(settings, history_entry("archive", trigger, started, duration, run.outcome,
                                           backup_id=r.backup_id if r else None, counts=counts, error=run.error,
                                           rule=run.rule.to_json()))
    if unattended and run.rule.mode == "auto":
        notify.event(settings, "archive", ok=run.outcome != "error",
                     error=f"{run.rule.describe()}: {run.error}" if run.error else None)


# ---------------------------------------------------------------------------- pending archives


def _pending_id(settings: Settings, rule_id: str) -> str:
    return f"{scope_of(settings).id}|{rule_id}"


def prepare_archive(settings: Settings, rule: ArchiveRule, *, now: datetime | None = None,
                    connector: Callable | None = None) -> PendingArchive | None:
    """Fix the rule's filter now and count the matches; the pending archive, or None when nothing matches."""
    query = rule.query(now or utc_now())
    with open_context(settings, connector=connector) as ctx:
        with translate_errors(f"counting the documents of {rule.collection} to archive"):
            matching = ctx.db[rule.collection].count_documents(query)
    scope = scope_of(settings)
    key = _pending_id(settings, rule.id)
    with meta(settings, "preparing an archive") as db:
        if not matching:
            db[PENDING].delete_one({"_id": key, "state": "pending"})
            return None
        doc = {"scope": scope.id, "rule_id": rule.id, "rule": rule.to_json(), "collection": rule.collection,
               "filter": filter_to_json(query), "matching": matching, "prepared_at": iso(utc_now()),
               "state": "pending", "last_error": None}
        try:
            # a newer preparation replaces a waiting one; one being run right now is left alone
            db[PENDING].update_one({"_id": key, "state": "pending"}, {"$set": doc}, upsert=True)
        except DuplicateKeyError:
            return None
    return PendingArchive.from_doc(doc)


def pending_archives(settings: Settings) -> list[PendingArchive]:
    """The archives waiting for confirmation in this backup root and database, oldest first."""
    with meta(settings, "reading the pending archives") as db:
        docs = db[PENDING].find({"scope": scope_of(settings).id}).sort("prepared_at", 1)
        return [PendingArchive.from_doc(d) for d in docs]


def confirm_archive(settings: Settings, pending_id: str, *, user: str, connector: Callable | None = None,
                    progress: Callable | None = None) -> ArchiveResult:
    """Run a pending archive exactly as prepared (back up, verify, delete); it is gone once done."""
    key = _pending_id(settings, _check_id(pending_id))
    with meta(settings, "claiming a pending archive") as db:
        doc = db[PENDING].find_one_and_update({"_id": key, "state": "pending"},
                                              {"$set": {"state": "running", "confirmed_by": user,
                                                        "confirmed_at": iso(utc_now())}},
                                              return_document=ReturnDocument.AFTER)
    if doc is None:
        raise UsageError(f"no pending archive {pending_id!r} to confirm: it was confirmed, dismissed or is "
                         "running already", hint="look at the list of pending archives again")
    started, t0 = utc_now(), time.monotonic()
    try:
        result = run_archive(settings.with_user(user), ArchiveOptions(doc["collection"], doc["filter"],
                                                                      confirmed=True, user=user),
                             connector=connector, progress=progress)
    except BaseException as exc:
        error = str(exc) if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
        try:
            with meta(settings, "releasing a pending archive") as db:
                db[PENDING].update_one({"_id": key, "state": "running"},
                                       {"$set": {"state": "pending", "last_error": error}})
        except BackupError as again:
            log.warning("cannot release pending archive %s: %s", pending_id, again)
        append_history(settings, history_entry("archive", "confirmed", started, time.monotonic() - t0, "error",
                                               error=error, rule=doc.get("rule")))
        raise
    with meta(settings, "finishing a pending archive") as db:
        db[PENDING].delete_one({"_id": key, "state": "running"})
    append_history(settings, history_entry(
        "archive", "confirmed", started, time.monotonic() - t0, "ok" if result.backup_id else "nothing",
        backup_id=result.backup_id, counts={"archived": result.archived, "deleted": result.deleted,
                                            "changed": result.changed}, rule=doc.get("rule"), confirmed_by=user))
    return result


def dismiss_archive(settings: Settings, pending_id: str, *, user: str) -> PendingArchive:
    """Drop a pending archive without running it (audited); the rule prepares a new one after the next backup."""
    key = _pending_id(settings, _check_id(pending_id))
    with meta(settings, "dismissing a pending archive") as db:
        doc = db[PENDING].find_one_and_delete({"_id": key, "state": "pending"})
    if doc is None:
        raise UsageError(f"no pending archive {pending_id!r} to dismiss: it was confirmed, dismissed or is "
                         "running", hint="look at the list of pending archives again")
    pending = PendingArchive.from_doc(doc)
    audit.record(open_store(settings).audit_log(), user=user, action="archive-dismiss",
                 collection=pending.collection, filter=pending.filter, matching=pending.matching,
                 prepared_at=pending.prepared_at)
    return pending


def _check_id(pending_id: object) -> str:
    if not isinstance(pending_id, str) or ":" not in pending_id or len(pending_id) > 400:
        raise UsageError(f"invalid pending archive id {pending_id!r}: expected COLLECTION:FIELD")
    return pending_id
