"""A second copy: copying backups between roots (local <-> S3) and keeping a mirror up to date.

``copy_backup`` copies one backup exactly as it is stored (an encrypted backup
stays encrypted with its key; the manifest keeps its bytes and hash), through
the destination store's staging, manifest last, and verifies it on arrival
(every file decrypted, hashed and decoded); a copy that does not verify is
removed again and the copy fails. ``mirror_status`` says, per backup, where
copies exist and whether the mirror is behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from .errors import IntegrityError, StorageError
from .operation import operation
from .store import BackupInfo, Store
from .timeutil import utc_now

CHUNK = 1 << 20


@dataclass
class CopyResult:
    copied: list[str] = field(default_factory=list)
    already_present: list[str] = field(default_factory=list)
    source: str = ""
    destination: str = ""
    bytes: int = 0

    def to_json(self) -> dict:
        return {"copied": self.copied, "already_present": self.already_present, "source": self.source,
                "destination": self.destination, "bytes": self.bytes,
                # a single copy also answers with the contract's {"backup_id", "path"}
                **({"backup_id": (self.copied or self.already_present)[0],
                    "path": f"{self.destination}/{(self.copied or self.already_present)[0]}"}
                   if len(self.copied) + len(self.already_present) == 1 else {})}

    def to_text(self) -> str:
        lines = [f"copied {len(self.copied)} backup(s) from {self.source} to {self.destination} "
                 f"({self.bytes} bytes)"]
        lines += [f"  {b}: copied and verified" for b in self.copied]
        lines += [f"  {b}: already there (identical)" for b in self.already_present]
        return "\n".join(lines)


def _copy_one(src: Store, dst: Store, info: BackupInfo, result: CopyResult) -> None:
    if dst.exists(info.backup_id):
        there = dst.get(info.backup_id)
        if there.stored_manifest != info.stored_manifest:
            raise IntegrityError(f"{dst.url} already holds a different backup with id {info.backup_id}; "
                                 "it is not replaced")
        result.already_present.append(info.backup_id)
        return
    writer = dst.begin(info.backup_id, info.day)
    try:
        for name, entry in info.collections.items():
            with src.open_stored(info, name) as fh, writer.open_raw(entry.file) as out:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
                    result.bytes += len(chunk)
        writer.commit_manifest(info.manifest, src.manifest_bytes(info))
    except BaseException:
        writer.abort()
        raise
    check = dst.verify(info.backup_id, deep=True)
    if not check.ok:
        dst.delete(info.backup_id)
        raise IntegrityError(f"the copy of {info.backup_id} in {dst.url} does not verify: "
                             f"{'; '.join(check.problems)}; it was removed", payload=check.to_json())
    result.copied.append(info.backup_id)


def copy_backups(src: Store, dst: Store, backup_ids: list[str] | None, *, user: str,
                 all_missing: bool = False) -> CopyResult:
    """Copy ``backup_ids`` (or, with ``all_missing``, every backup ``dst`` lacks) from ``src`` to ``dst``."""
    if src.url == dst.url:
        raise StorageError(f"source and destination are the same root ({src.url})")
    result = CopyResult(source=src.url, destination=dst.url)
    with operation(dst, "copy", user=user, details={"source": src.url, "backup_ids": backup_ids,
                                                    "all_missing": all_missing or None}) as op:
        if all_missing:
            have = {b.backup_id for b in dst.list_backups()}
            chosen = [b for b in reversed(src.list_backups()) if b.backup_id not in have]
        else:
            chosen = [src.get(b) for b in backup_ids or []]
        for info in chosen:
            _copy_one(src, dst, info, result)
        op.note(copied=result.copied, already_present=result.already_present or None, bytes=result.bytes)
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
