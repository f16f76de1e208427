"""Clean-up: which backups to keep, and why, as a policy (restic's ``forget``), then deleting the rest.

A ``RetentionPolicy`` is a small value: ``keep_last`` N newest; ``keep_hourly``,
``keep_daily``, ``keep_weekly``, ``keep_monthly`` N: the newest backup of each
of the last N hours / days / ISO weeks / months that have one;
``keep_within``: everything within that time of the newest backup;
``older_than``: the seed's rule, everything younger than that (from now).
Without any ``keep_*`` rule the policy is ``older_than`` 7 days. The newest
backup is always kept (an idle system keeps its last good copy), and so is,
for each collection, the newest backup that holds data of it (so backups of
an emptied or wiped database never push the good ones out). Safety backups,
taken by restores, have their own rule: kept for ``safety_days``, and per
database the newest one (the undo of the latest restore) always, with the one
an interrupted undo needs to run again. Pre-write backups (taken before a
host application overwrote collections) are kept ``pre_write_days``. Archive
backups hold documents that were deleted from the database after the backup:
they are kept until deleted by hand, or ``archive_days`` when set. None of
these three kinds counts for the ``keep_*`` and ``older_than`` rules, which
judge full backups only.

``apply_policy`` decides for each backup and says why, so a dry run and the
dashboard's preview show exactly what the real clean-up then does. Deleting
happens under the store's lock, audited; data another kept backup shares
(deduplicated) is kept by the store until no kept backup refers to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta

from .backup import SIDE_TRIGGERS
from .errors import UsageError
from .operation import operation
from .store import BackupInfo, Store
from .timeutil import compact_duration, format_duration, parse_duration, utc_now

DEFAULT_RETENTION = timedelta(days=7)
DEFAULT_SAFETY_DAYS = 7.0
DEFAULT_PRE_WRITE_DAYS = 7.0
TIERS = ("hourly", "daily", "weekly", "monthly")

__all__ = ["DEFAULT_RETENTION", "RetentionPolicy", "Decision", "CleanupResult", "apply_policy", "cleanup",
           "parse_duration", "format_duration"]


def _bucket(tier: str, when: datetime) -> str:
    if tier == "hourly":
        return when.strftime("%Y-%m-%d %H:00")
    if tier == "daily":
        return when.strftime("%Y-%m-%d")
    if tier == "weekly":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.strftime("%Y-%m")


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = None
    keep_hourly: int | None = None
    keep_daily: int | None = None
    keep_weekly: int | None = None
    keep_monthly: int | None = None
    keep_within: timedelta | None = None
    older_than: timedelta | None = None
    safety_days: float = DEFAULT_SAFETY_DAYS
    pre_write_days: float = DEFAULT_PRE_WRITE_DAYS
    archive_days: float | None = None  # None: archive backups are kept until deleted by hand

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a whole number of 0 or more, got {v!r}")
        for name in ("keep_within", "older_than"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, timedelta) or v.total_seconds() <= 0):
                raise UsageError(f"--{name.replace('_', '-')} must be a positive duration")
        if not isinstance(self.safety_days, (int, float)) or isinstance(self.safety_days, bool) \
                or not self.safety_days >= 0:
            raise UsageError(f"the safety backup retention must be 0 or more days, got {self.safety_days!r}")
        if not _days(self.pre_write_days) or not self.pre_write_days < float("inf"):
            raise UsageError(f"--pre-write-days must be a number of 0 or more, got {self.pre_write_days!r}")
        if self.archive_days is not None and (not _days(self.archive_days) or not 0 < self.archive_days < float("inf")):
            raise UsageError(f"--archive-days must be a positive number of days, got {self.archive_days!r}")

    @property
    def tiered(self) -> bool:
        return any(getattr(self, f"keep_{t}") is not None for t in ("last", *TIERS)) or self.keep_within is not None

    def effective(self) -> "RetentionPolicy":
        """The policy as applied: with no rule at all, the seed's "older than 7 days"."""
        if not self.tiered and self.older_than is None:
            return replace(self, older_than=DEFAULT_RETENTION)
        return self

    def to_json(self) -> dict:
        out = asdict(self)
        for k in ("keep_within", "older_than"):
            out[k] = compact_duration(out[k]) if out[k] is not None else None
        return out

    @classmethod
    def from_json(cls, data: dict) -> "RetentionPolicy":
        kw = {k: data.get(k) for k in ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly")}
        for k in ("keep_within", "older_than"):
            kw[k] = parse_duration(data[k], what=k) if data.get(k) else None
        archive = data.get("archive_days")
        return cls(**kw, safety_days=float(data.get("safety_days", DEFAULT_SAFETY_DAYS)),
                   pre_write_days=float(data.get("pre_write_days", DEFAULT_PRE_WRITE_DAYS)),
                   archive_days=float(archive) if archive is not None else None)

    def describe(self) -> str:
        p = self.effective()
        parts = [f"last {p.keep_last}" if p.keep_last is not None else ""]
        parts += [f"{getattr(p, f'keep_{t}')} {t}" for t in TIERS if getattr(p, f"keep_{t}") is not None]
        if p.keep_within is not None:
            parts.append(f"everything within {compact_duration(p.keep_within)} of the newest")
        if p.older_than is not None:
            parts.append(f"everything younger than {compact_duration(p.older_than)}")
        rules = ", ".join(x for x in parts if x)
        archives = f"{p.archive_days:g} days" if p.archive_days is not None else "until deleted by hand"
        return (f"keep {rules}; never the newest, nor the newest with data of each collection; safety backups "
                f"{p.safety_days:g} days and the latest undo; pre-write backups {p.pre_write_days:g} days; "
                f"archives {archives}")


@dataclass
class Decision:
    backup_id: str
    created_at: str
    trigger: str
    keep: bool
    reasons: list[str] = field(default_factory=list)
    bytes: int = 0  # the backup's data files, as its manifest lists them
    freed: int = 0  # what deleting it frees: its stored data that no kept backup shares

    def to_json(self) -> dict:
        return {"backup_id": self.backup_id, "created_at": self.created_at, "trigger": self.trigger,
                "keep": self.keep, "reasons": self.reasons, "bytes": self.bytes, "freed_bytes": self.freed}


def _stored_data(info: BackupInfo) -> dict[str, int]:
    """The stored objects a backup refers to (name -> stored size), its manifest included."""
    out = {p.location: p.stored_bytes for e in info.collections.values() for p in e.stored_parts()}
    out[f"{info.day}/{info.backup_id}/manifest"] = len(info.stored_manifest)
    return out


def _count_freed(ordered: list[BackupInfo], decisions: dict[str, Decision]) -> None:
    """What deleting each backup frees: its manifest and the objects no kept backup refers to (each
    object counted once, with the newest deleted backup that refers to it)."""
    kept: set[str] = set()
    for b in ordered:
        if decisions[b.backup_id].keep:
            kept.update(_stored_data(b))
    counted: set[str] = set()
    for b in ordered:
        d = decisions[b.backup_id]
        if d.keep:
            continue
        for ident, size in _stored_data(b).items():
            if ident not in kept and ident not in counted:
                counted.add(ident)
                d.freed += size


def apply_policy(backups: list[BackupInfo], policy: RetentionPolicy, now: datetime | None = None) -> list[Decision]:
    """Keep or delete each backup (newest first), with the reasons; changes nothing."""
    now = now or utc_now()
    policy = policy.effective()
    ordered = sorted(backups, key=lambda b: (b.created_at, b.backup_id), reverse=True)
    decisions = {b.backup_id: Decision(b.backup_id, b.created_at, b.trigger, False, [], b.total_bytes)
                 for b in ordered}
    if ordered:
        decisions[ordered[0].backup_id].reasons.append("newest backup")
    regular = [b for b in ordered if b.trigger not in SIDE_TRIGGERS]
    safety = [b for b in ordered if b.trigger == "safety"]
    if policy.keep_last:
        for b in regular[:policy.keep_last]:
            decisions[b.backup_id].reasons.append(f"last {policy.keep_last}")
    for tier in TIERS:
        n = getattr(policy, f"keep_{tier}")
        if not n:
            continue
        seen: set[str] = set()
        for b in regular:
            bucket = _bucket(tier, b.created)
            if bucket in seen:
                continue
            seen.add(bucket)
            decisions[b.backup_id].reasons.append(f"{tier} {bucket}")
            if len(seen) >= n:
                break
    if policy.keep_within is not None and regular:
        limit = regular[0].created - policy.keep_within
        for b in regular:
            if b.created >= limit:
                decisions[b.backup_id].reasons.append(f"within {compact_duration(policy.keep_within)} of the newest")
    if policy.older_than is not None:
        cutoff = now - policy.older_than
        for b in regular:
            if b.created >= cutoff:
                decisions[b.backup_id].reasons.append(f"younger than {compact_duration(policy.older_than)}")
    for b, reason in _latest_undo(safety):
        decisions[b.backup_id].reasons.append(reason)
    if safety:
        cutoff = now - timedelta(days=policy.safety_days)
        for b in safety:
            if b.created >= cutoff:
                decisions[b.backup_id].reasons.append(f"safety backup younger than {policy.safety_days:g} days")
    _own_rules(ordered, decisions, policy, now)
    for b, names in _last_with_data(regular).items():
        if decisions[b].reasons:
            continue  # kept anyway; said only where it is what keeps a backup
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        decisions[b].reasons.append(f"newest backup holding data of {shown} (newer backups hold none)")
    out = [decisions[b.backup_id] for b in ordered]
    for d in out:
        d.keep = bool(d.reasons)
    _count_freed(ordered, decisions)
    return out


def _own_rules(ordered: list[BackupInfo], decisions: dict[str, Decision], policy: RetentionPolicy,
               now: datetime) -> None:
    """Pre-write backups: ``pre_write_days``; archives: until deleted by hand, or ``archive_days``."""
    cutoff = now - timedelta(days=policy.pre_write_days)
    for b in ordered:
        if b.trigger == "pre-write" and b.created >= cutoff:
            decisions[b.backup_id].reasons.append(f"pre-write backup younger than {policy.pre_write_days:g} days")
        elif b.trigger == "archive":
            if policy.archive_days is None:
                decisions[b.backup_id].reasons.append("archive (kept until deleted by hand)")
            elif b.created >= now - timedelta(days=policy.archive_days):
                decisions[b.backup_id].reasons.append(f"archive younger than {policy.archive_days:g} days")


def _days(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _latest_undo(safety: list[BackupInfo]) -> list[tuple[BackupInfo, str]]:
    """What Undo needs, per database: the newest safety backup, and when that one was taken by an undo,
    also the safety backup of the restore it undid (an interrupted undo runs again from it)."""
    out: list[tuple[BackupInfo, str]] = []
    seen: set[str] = set()
    for b in safety:  # newest first
        database = getattr(b, "database", None)
        if database in seen:
            continue
        seen.add(database)
        out.append((b, "undo of the latest restore" + (f" of {database}" if database else "")))
        meta = _safety_meta(b)
        if meta.get("action") == "undo" and meta.get("undo_of"):
            for older in safety:
                if getattr(older, "database", None) == database and _safety_meta(older).get("op") == meta["undo_of"]:
                    out.append((older, "safety backup of the restore the latest undo undid"))
                    break
    return out


def _safety_meta(b: BackupInfo) -> dict:
    manifest = getattr(b, "manifest", None)
    meta = manifest.get("safety") if manifest is not None else None
    return meta if isinstance(meta, dict) else {}


def _last_with_data(regular: list[BackupInfo]) -> dict[str, list[str]]:
    """backup id -> the collections it is the newest backup with data of (per database).

    An emptied or dropped collection, or a wiped database, then keeps its last
    good backup whatever the other rules say, until a newer backup holds data
    of that collection again.
    """
    out: dict[str, list[str]] = {}
    done: set[tuple] = set()
    for b in regular:  # newest first
        for name, entry in b.collections.items():
            key = (getattr(b, "database", None), name)
            if key in done or not entry.count:
                continue
            done.add(key)
            out.setdefault(b.backup_id, []).append(name)
    return out


@dataclass
class CleanupResult:
    deleted: list[str] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = False
    freed_bytes: int = 0
    policy: dict = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    # encrypted backups whose key is not configured: their dates and triggers cannot be read, so
    # the policy cannot judge them and they are left alone ({backup_id, day, key_fingerprint, ...})
    locked: list[dict] = field(default_factory=list)
    # folders that are not readable backups (damaged, tampered): never deleted by clean-up
    unreadable: list[str] = field(default_factory=list)
    # garbage collection of data objects no backup refers to (``Repository.prune``)
    prune: dict = field(default_factory=dict)
    # scratch databases of killed restore drills, dropped by the same clean-up (``drill.sweep_leftovers``)
    drill_databases_dropped: list[str] = field(default_factory=list)
    drill_error: str | None = None

    def to_json(self) -> dict:
        return {"deleted": self.deleted, "kept": self.kept, "dry_run": self.dry_run,
                "freed_bytes": self.freed_bytes, "policy": self.policy,
                "decisions": [d.to_json() for d in self.decisions], "locked": self.locked,
                "unreadable": self.unreadable, "prune": self.prune,
                "drill_databases_dropped": self.drill_databases_dropped, "drill_error": self.drill_error}

    def to_text(self) -> str:
        from .units import format_bytes

        verb = "would delete" if self.dry_run else "deleted"
        freed = "would free" if self.dry_run else "freed"
        lines = [f"{verb} {len(self.deleted)} backup(s), kept {self.kept}; {freed} {format_bytes(self.freed_bytes)} "
                 f"({self.freed_bytes} bytes: data that no kept backup needs)"]
        for d in self.decisions:
            what = "keep  " if d.keep else ("delete" if not self.dry_run else "would delete")
            lines.append(f"  {what} {d.backup_id} ({d.trigger})" + (f": {', '.join(d.reasons)}" if d.reasons else ""))
        if self.locked:
            keys = sorted({str(b.get("key_fingerprint")) for b in self.locked})
            lines.append(f"left alone: {len(self.locked)} backup(s) encrypted with a key that is not configured "
                         f"({', '.join(keys)}); add its key file to BACKUP_KEY_FILES to include them")
            lines.extend(f"  skip   {b['backup_id']}" for b in self.locked)
        if self.unreadable:
            lines.append(f"left alone: {len(self.unreadable)} folder(s) that are not readable backups "
                         "(run `python -m backup_core list` for why)")
            lines.extend(f"  skip   {problem}" for problem in self.unreadable)
        lines += [f"dropped drill database {n} (left by a killed restore drill)" for n in self.drill_databases_dropped]
        if self.drill_error:
            lines.append(f"drill databases not checked: {self.drill_error}")
        blocked = self.prune.get("blocked_by") or []
        if blocked or (self.dry_run and (self.locked or self.unreadable)):
            lines.append("data no backup needs any more stays until every backup can be read (a backup that "
                         "cannot be read may share it)")
        return "\n".join(lines)


def cleanup(store: Store, policy: RetentionPolicy | timedelta | None = None, *, dry_run: bool = False,
            user: str = "unknown", now: datetime | None = None, trigger: str = "manual",
            expect: list[str] | None = None) -> CleanupResult:
    """Apply ``policy`` (a ``timedelta`` means "older than") to ``store``: delete what it does not keep.

    ``expect``: the backups a preview showed for deletion. If the policy now
    deletes anything else (a backup was added or removed since), nothing is
    deleted and ``UsageError`` says so: a person confirms what they saw.
    """
    if policy is None:
        policy = RetentionPolicy()
    elif isinstance(policy, timedelta):
        policy = RetentionPolicy(older_than=policy)
    action = "cleanup_dry_run" if dry_run else "cleanup"
    with operation(store, action, user=user, lock=False if dry_run else "exclusive",
                   details={"trigger": trigger, "policy": policy.effective().to_json()}) as op:
        locked: list[dict] = []
        unreadable: list[str] = []
        listed = store.list_backups(errors=unreadable, locked=locked)
        infos = {b.backup_id: b for b in listed}
        decisions = apply_policy(listed, policy, now)
        if expect is not None and sorted(d.backup_id for d in decisions if not d.keep) != sorted(expect):
            raise UsageError("the backups changed since the preview (a backup was made or deleted): nothing "
                             "was deleted; look at the new preview and confirm again")
        result = CleanupResult(dry_run=dry_run, policy=policy.effective().to_json(), decisions=decisions,
                               kept=sum(1 for d in decisions if d.keep), locked=locked,
                               unreadable=unreadable)
        doomed = [d for d in decisions if not d.keep]
        result.deleted = [d.backup_id for d in doomed]
        if dry_run:
            # data objects go only when every manifest can be read (a locked one may share them)
            result.freed_bytes = sum(d.freed for d in doomed) if not (locked or unreadable) else \
                sum(len(infos[d.backup_id].stored_manifest) for d in doomed)
        else:
            store.forget([infos[d.backup_id] for d in doomed])
            pruned = store.prune()
            result.prune = pruned.to_json()
            result.freed_bytes = pruned.freed_bytes + sum(len(infos[d.backup_id].stored_manifest) for d in doomed)
        op.note(deleted=result.deleted, freed_bytes=result.freed_bytes, kept=result.kept,
                left_alone=[b["backup_id"] for b in locked], prune_blocked=len(result.prune.get("blocked_by") or [])
                or None)
        return result


def preview(store: Store, policy: RetentionPolicy, now: datetime | None = None) -> list[Decision]:
    """What ``cleanup`` would do now, without the lock or the audit log (the dashboard's preview)."""
    return apply_policy(store.list_backups(), policy, now)
