"""Archive-and-purge: back up the documents a filter matches, verify that backup, delete exactly those.

Order, inside one audited, locked operation ``archive`` (``operation.py``):

1. check the filter (``query.parse_filter``: JSON in the product's dialect,
   plain query operators only) and the collection, and count the matching
   documents on the primary. A dry run stops here and changes nothing;
   without confirmation nothing runs at all (``RestoreRefused``).
2. back up the matching documents of that one collection: ``create_backup``
   with ``BackupOptions.filter`` (trigger ``archive``, reading the primary),
   the filter recorded in the manifest (``filter``);
3. verify that backup: every hash, every row decoded, the counts
   (``Store.require_verified``); a backup that does not verify deletes
   nothing;
4. read the backup back from the store and delete, a batch at a time, exactly
   the documents it holds, by ``_id``, and of those only the ones that are
   still byte for byte what the backup holds and still match the filter.
   A document that starts matching after the backup is not in it and stays;
   one that changed since stays too and is counted as ``changed``.

The one window left (a standalone MongoDB has no multi-document
transactions): a document rewritten in the instant between the check of its
batch and the delete of that batch, in a way that still matches the filter,
is deleted without its last change. The backup holds it as it was a moment
before.

Merge-restoring the archive backup brings the documents back (``restore
--mode merge``). It holds only part of a collection, so a replace restore of
it is refused: that would delete everything else.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from dataclasses import dataclass
from typing import Callable

from pymongo.database import Database

from .backup import BackupOptions, create_backup
from .config import Settings
from .context import open_operation
from .errors import CONFIRM_HINT, RestoreRefused, UsageError
from .keys import MISSING, in_filter, key_bytes
from .mongoutil import raw_collection, translate_errors
from .swapin import user_collections
from .operation import operation
from .progress import reporter
from .query import filter_text, filter_to_json, parse_filter
from .store import Store

Progress = Callable[[str, int, int], None]
BATCH = 500


@dataclass
class ArchiveOptions:
    collection: str
    filter: dict | str  # a query (``query.parse_filter`` reads JSON text, dialect objects or Python values)
    dry_run: bool = False
    confirmed: bool = False
    user: str = "unknown"
    lock_timeout: float = 10.0
    compress: bool = False
    batch: int = BATCH

    def query(self) -> dict:
        return parse_filter(self.filter, what="archive filter")

    def audit_details(self) -> dict:
        try:
            shown = filter_to_json(self.query())
        except UsageError:
            shown = str(self.filter)[:200]  # the refusal itself says what is wrong with it
        return {"collection": self.collection, "filter": shown, "dry_run": self.dry_run}


@dataclass
class ArchiveResult:
    collection: str
    filter: dict  # the query as JSON in the dialect (as the manifest records it)
    dry_run: bool
    backup_id: str | None = None  # None: a dry run, or nothing matched (no backup is made)
    archived: int = 0  # documents in the archive backup (a dry run: documents that match now)
    deleted: int = 0
    changed: int = 0  # archived, but changed or removed since the backup: left alone
    duration_s: float = 0.0
    database: str = ""

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "archived": self.archived, "deleted": self.deleted,
                "changed": self.changed, "collection": self.collection, "filter": self.filter,
                "dry_run": self.dry_run, "database": self.database, "duration_s": round(self.duration_s, 3)}

    def to_text(self) -> str:
        if self.dry_run:
            return (f"dry run: {self.archived} document(s) of {self.collection} match the filter and would be "
                    "backed up, verified and deleted; nothing was changed (add --yes instead of --dry-run)")
        if self.backup_id is None:
            return f"no document of {self.collection} matches the filter: nothing was archived or deleted"
        lines = [f"archived {self.archived} document(s) of {self.collection} in backup {self.backup_id} "
                 f"(verified), deleted {self.deleted} in {self.duration_s:.2f}s"]
        if self.changed:
            lines.append(f"  {self.changed} archived document(s) changed or went away since the backup and "
                         "were left alone")
        lines.append(f"restore {self.backup_id} with --mode merge to bring them back")
        return "\n".join(lines)

    def audit_details(self) -> dict:
        return {"backup_id": self.backup_id, "archived": self.archived, "deleted": self.deleted,
                "changed": self.changed}


def run_archive(settings: Settings, options: ArchiveOptions, *, connector: Callable | None = None,
                progress: Progress | None = None) -> ArchiveResult:
    """An entry point's archive (CLI, Python API, scheduler): ``archive_documents`` in an operation.

    Unconfirmed (and not a dry run), it is refused before anything is
    connected or locked, and the refusal is on the record.
    """
    action = "archive_dry_run" if options.dry_run else "archive"
    details = {"database": settings.db_name, **options.audit_details()}
    if not options.dry_run and not options.confirmed:
        with open_operation(settings, action, details=details, lock=False):
            raise RestoreRefused("archive needs confirmation: nothing was changed", hint=CONFIRM_HINT)
    with open_operation(settings, action, details=details, lock=not options.dry_run,
                        lock_timeout=options.lock_timeout, connector=connector) as ctx:
        options.query()  # a bad filter is refused before the database is reached
        return archive_documents(ctx.db, ctx.store, options, progress)


def archive_documents(db: Database, store: Store, options: ArchiveOptions,
                      progress: Progress | None = None) -> ArchiveResult:
    """Back up, verify, then delete the documents of ``options.collection`` matching ``options.filter``."""
    action = "archive_dry_run" if options.dry_run else "archive"
    details = {"database": db.name, **options.audit_details()}
    # a dry run only counts: no lock (backups and restores go on meanwhile)
    with operation(store, action, user=options.user, lock=not options.dry_run,
                   lock_timeout=options.lock_timeout, details=details) as op:
        result = _archive(db, store, options, progress)
        op.note(**result.audit_details())
        return result


def _archive(db: Database, store: Store, o: ArchiveOptions, progress: Progress | None) -> ArchiveResult:
    from .operation import meta_db_name

    started = time.monotonic()
    query = o.query()
    if not o.dry_run and not o.confirmed:
        raise RestoreRefused("archive not confirmed: nothing was changed", hint=CONFIRM_HINT)
    if o.batch < 1:
        raise UsageError("the delete batch size must be 1 or more")
    live = user_collections(db, meta_db_name())
    if o.collection not in live:
        raise UsageError(f"no collection named {o.collection!r} in database {db.name}; "
                         f"it has {', '.join(live) or 'no collections'}")
    result = ArchiveResult(o.collection, filter_to_json(query), o.dry_run, database=db.name)
    with translate_errors(f"counting the documents of {o.collection} that match {filter_text(query)}"):
        matching = db[o.collection].count_documents(query)
    if o.dry_run or matching == 0:
        result.archived = matching if o.dry_run else 0
        result.duration_s = time.monotonic() - started
        return result
    backup = create_backup(db, store, BackupOptions(collections=[o.collection], filter=query, trigger="archive",
                                                    user=o.user, lock_timeout=o.lock_timeout,
                                                    compress=o.compress), reporter(progress, "backing up"))
    result.backup_id = backup.backup_id
    info = store.require_verified(backup.backup_id, [o.collection])  # IntegrityError: nothing is deleted
    result.archived = info.collection(o.collection).count
    result.deleted = _purge(db, store, info, o.collection, query, o.batch,
                            reporter(progress, "deleting", main=True))
    result.changed = result.archived - result.deleted
    result.duration_s = time.monotonic() - started
    return result


def _purge(db: Database, store: Store, info, name: str, query: dict, batch: int,
           progress: Progress | None) -> int:
    """Delete the backup's documents that are still exactly as backed up and still match; the count."""
    coll = raw_collection(db, name)
    total = info.collection(name).count
    done = deleted = 0
    if progress:
        progress(name, 0, total)
    with contextlib.closing(store.iter_documents(info, name)) as docs:
        while chunk := list(itertools.islice(docs, batch)):
            done += len(chunk)
            backed_up = {key_bytes(raw, "_id"): raw for raw in chunk}
            backed_up.pop(MISSING, None)  # (every stored document has an _id; never delete by a missing one)
            with translate_errors(f"reading collection {name}"):
                live = {key_bytes(bytes(d.raw), "_id"): bytes(d.raw)
                        for d in coll.find(in_filter("_id", list(backed_up)))}
            same = [k for k, raw in backed_up.items() if live.get(k) == raw]
            if same:
                with translate_errors(f"deleting archived documents from {name}"):
                    deleted += coll.delete_many({"$and": [in_filter("_id", same), query]}).deleted_count
            if progress:
                progress(name, done, total)
    return deleted



RULE_MODES = ("auto", "confirm")


@dataclass(frozen=True)
class ArchiveRule:
    """A scheduled archive rule: documents of ``collection`` whose ``field`` is older than ``older_than_days``.

    ``mode``: ``auto`` archives after each scheduled backup; ``confirm``
    prepares the archive after each scheduled backup and waits for an admin
    (``scheduler.archive_rules``). The field holds dates; documents without it,
    or with a value of another type, never match.
    """

    collection: str
    field: str
    older_than_days: float
    mode: str = "auto"
    enabled: bool = True

    def __post_init__(self) -> None:
        from .keys import check_match_field

        if not isinstance(self.collection, str) or not self.collection or self.collection.startswith("system.") \
                or "$" in self.collection or "\x00" in self.collection:
            raise UsageError(f"invalid archive rule: bad collection name {self.collection!r}")
        try:
            check_match_field(self.field)
        except UsageError:
            raise UsageError(f"invalid archive rule: bad field name {self.field!r}") from None
        days = self.older_than_days
        if not isinstance(days, (int, float)) or isinstance(days, bool) or not 0 < days < 100_000:
            raise UsageError(f"invalid archive rule: older_than_days must be a positive number of days, got {days!r}")
        if self.mode not in RULE_MODES:
            raise UsageError(f"invalid archive rule: mode must be one of {', '.join(RULE_MODES)}, got {self.mode!r}")
        if not isinstance(self.enabled, bool):
            raise UsageError("invalid archive rule: enabled must be true or false")

    @property
    def id(self) -> str:
        """One rule per collection and field: what a pending archive belongs to."""
        return f"{self.collection}:{self.field}"

    def query(self, now) -> dict:
        """The filter with the rule's age turned into a fixed cutoff (what runs, or what an admin confirms)."""
        from datetime import timedelta

        cutoff = now - timedelta(days=self.older_than_days)
        # BSON dates hold milliseconds: the cutoff as stored, so the recorded filter reads back the same
        return {self.field: {"$lt": cutoff.replace(microsecond=cutoff.microsecond // 1000 * 1000)}}

    def describe(self) -> str:
        when = "after each scheduled backup" if self.mode == "auto" else \
            "prepared after each scheduled backup, run when an admin confirms"
        return f"archive {self.collection} where {self.field} is older than {self.older_than_days:g} days ({when})"

    def to_json(self) -> dict:
        return {"collection": self.collection, "field": self.field, "older_than_days": self.older_than_days,
                "mode": self.mode, "enabled": self.enabled}

    @classmethod
    def from_json(cls, data: object) -> "ArchiveRule":
        if isinstance(data, ArchiveRule):
            return data
        if not isinstance(data, dict):
            raise UsageError(f"invalid archive rule: expected an object, got {data!r}")
        unknown = set(data) - {"collection", "field", "older_than_days", "mode", "enabled"}
        if unknown:
            raise UsageError(f"invalid archive rule: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            days = data.get("older_than_days")
            return cls(collection=data.get("collection"), field=data.get("field"),  # type: ignore[arg-type]
                       older_than_days=float(days) if isinstance(days, (int, float, str)) and
                       not isinstance(days, bool) else days,  # type: ignore[arg-type]
                       mode=data.get("mode", "auto"), enabled=data.get("enabled", True))
        except (TypeError, ValueError) as exc:
            raise UsageError(f"invalid archive rule: {exc}") from None


def check_rules(rules: list) -> list[ArchiveRule]:
    """Validated rules; at most one rule per collection and field."""
    if not isinstance(rules, (list, tuple)):
        raise UsageError("archive rules must be a list")
    out = [ArchiveRule.from_json(r) for r in rules]
    ids = [r.id for r in out]
    if len(set(ids)) != len(ids):
        raise UsageError("two archive rules name the same collection and field")
    return out
