"""A second copy: copying backups between roots (local <-> S3) and keeping a mirror up to date.

``copy_backups`` brings backups into another repository through the one path
copies and imports share (``store.arrival.bring``): every data object the
target lacks is fetched, the backup is checked as it will stand in the target
(every part decrypted, hashed and decoded), the objects are saved and the
manifest is committed last, with its exact bytes (an encrypted backup stays
encrypted with its key). The target never depends on the source, and what the
target holds already is never stored twice. A backup that cannot be copied
(encrypted with a key that is not configured, damaged) is reported as
skipped with the reason, and the copy then fails (exit non-zero) after
copying everything else. ``mirror_status`` says, per backup, where copies
exist and whether the mirror is behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .errors import BackupError, StorageError
from .operation import operation
from .store import BackupInfo, Store
from .store.arrival import bring, fetch_from
from .timeutil import utc_now


class CopyIncomplete(StorageError):
    """Some of the backups asked for could not be copied (the others were)."""


@dataclass
class CopyResult:
    copied: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    repaired: dict[str, list[str]] = field(default_factory=dict)  # backup -> parts an earlier copy lacked
    skipped: list[dict] = field(default_factory=list)  # {"backup_id", "reason"}
    source: str = ""
    destination: str = ""
    bytes: int = 0

    def to_json(self) -> dict:
        done = self.copied + self.already_present
        return {"copied": self.copied, "already_present": self.already_present, "repaired": self.repaired,
                "skipped": self.skipped, "source": self.source, "destination": self.destination,
                "bytes": self.bytes,
                # a single copy also answers with the contract's {"backup_id", "path"}
                **({"backup_id": done[0], "path": f"{self.destination}/{done[0]}"} if len(done) == 1 else {})}

    def to_text(self) -> str:
        lines = [f"copied {len(self.copied)} backup(s) from {self.source} to {self.destination} "
                 f"({self.bytes} bytes)" + (f"; skipped {len(self.skipped)}" if self.skipped else "")]
        lines += [f"  {b}: copied and verified" for b in self.copied]
        lines += [f"  {b}: already there (identical)" + (f", brought {len(self.repaired[b])} missing part(s)"
                                                         if b in self.repaired else "")
                  for b in self.already_present]
        lines += [f"  {s['backup_id']}: SKIPPED, {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


def _copy_one(src: Store, dst: Store, info: BackupInfo, result: CopyResult) -> None:
    arrival = bring(dst, info, fetch_from(src, info))
    result.bytes += arrival.bytes
    if arrival.arrived:
        result.copied.append(info.backup_id)
    else:
        result.already_present.append(info.backup_id)
        if arrival.repaired:
            result.repaired[info.backup_id] = arrival.repaired


def copy_backups(src: Store, dst: Store, backup_ids: list[str] | None, *, user: str,
                 all_missing: bool = False) -> CopyResult:
    """Copy ``backup_ids`` (or, with ``all_missing``, every backup ``dst`` lacks) from ``src`` to ``dst``."""
    if src.url == dst.url:
        raise StorageError(f"source and destination are the same root ({src.url})")
    result = CopyResult(source=src.url, destination=dst.url)
    with operation(dst, "copy", user=user, details={"source": src.url, "backup_ids": backup_ids,
                                                    "all_missing": all_missing or None}) as op, \
            src.lock("copy from", 10.0, mode="read"):
        chosen: list[BackupInfo] = []
        if all_missing:
            locked: list[dict] = []
            errors: list[str] = []
            have = {b.backup_id for b in dst.list_backups(trust=False)}
            chosen = [b for b in reversed(src.list_backups(locked=locked, errors=errors)) if b.backup_id not in have]
            result.skipped += [{"backup_id": b["backup_id"], "reason": f"encrypted with key {b['key_fingerprint']}, "
                                "which is not configured"} for b in locked if b["backup_id"] not in have]
            result.skipped += [{"backup_id": e.split(": ", 1)[0].rsplit("/", 1)[-1], "reason": e.split(": ", 1)[-1]}
                               for e in errors]
        else:
            for backup_id in backup_ids or []:
                try:
                    chosen.append(src.get(backup_id))
                except BackupError as exc:
                    result.skipped.append({"backup_id": backup_id, "reason": str(exc)})
        for info in chosen:
            try:
                _copy_one(src, dst, info, result)
            except BackupError as exc:
                result.skipped.append({"backup_id": info.backup_id, "reason": str(exc)})
        op.note(copied=result.copied, already_present=result.already_present or None, bytes=result.bytes,
                skipped=[s["backup_id"] for s in result.skipped] or None)
        if result.skipped:
            raise CopyIncomplete(f"copied {len(result.copied)} backup(s) to {dst.url}, but could not copy "
                                 f"{len(result.skipped)}: " + "; ".join(f"{s['backup_id']}: {s['reason']}"
                                                                         for s in result.skipped),
                                 payload=result.to_json())
    return result


@dataclass
class MirrorStatus:
    """Where each backup has copies, and whether the mirror lags behind."""

    primary: str
    mirror: str | None
    in_mirror: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)  # backups of the primary not in the mirror, oldest first
    behind_since: str | None = None  # created_at of the oldest backup the mirror lacks
    error: str | None = None

    @property
    def behind(self) -> bool:
        return bool(self.missing)

    def to_json(self) -> dict:
        return {"primary": self.primary, "mirror": self.mirror, "missing": self.missing,
                "behind": self.behind, "behind_since": self.behind_since, "error": self.error}


def mirror_status(primary: Store, mirror: Store | None, *, grace: timedelta = timedelta(minutes=10)) -> MirrorStatus:
    """Compare the primary's backups with the mirror's; backups younger than ``grace`` are not "behind" yet."""
    status = MirrorStatus(primary.url, mirror.url if mirror else None)
    if mirror is None:
        return status
    backups = primary.list_backups()
    try:
        status.in_mirror = {b.backup_id for b in mirror.list_backups()}
    except Exception as exc:  # noqa: BLE001 - a mirror that cannot be read is shown, not fatal
        status.error = str(exc)
        return status
    cutoff = utc_now() - grace
    lacking = [b for b in reversed(backups) if b.backup_id not in status.in_mirror and b.created < cutoff]
    status.missing = [b.backup_id for b in lacking]
    status.behind_since = lacking[0].created_at if lacking else None
    return status
