"""Bringing a backup into a repository from elsewhere: another repository (copy) or an archive (import).

One path for both, in restic's order: every part the target lacks is fetched
into a local spool, the whole backup is checked as it will stand in the target
(every part's hash, every row decoded, documents counted, ``_id``s checked:
parts the target already holds are read from the target), the spooled parts
are saved as data objects, and only then is the manifest committed, with its
exact bytes. So the target never depends on the source (a shared part is
*there*, not referred to), deduplication holds on the target (a part it has
is never stored twice), and a backup arrives whole or not at all. A backup
that is already there with the same manifest is completed instead (parts
missing from an earlier, broken copy are brought). Backups of formats 1 and 2
arrive converted to format 3: their files become data objects and their
manifest is rewritten (``converted_from`` records the original's hash).
"""

from __future__ import annotations

import copy as _copy
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import BackupError, BackupNotFound, IntegrityError, StorageError
from .checker import check_backup
from .crypto import encrypt_bytes
from .layout import view_name
from .manifest import FORMAT_VERSION, Manifest, Part, object_name
from .repository import BackupInfo, Repository, day_of

Fetch = Callable[[Part, BinaryIO], None]
"""fetch(part, out): write the part's stored bytes (as the source holds them) to ``out``"""


@dataclass
class Arrival:
    backup_id: str
    location: str
    arrived: bool  # False: it was there already (identical)
    repaired: list[str] = field(default_factory=list)  # parts an earlier copy lacked, brought now
    bytes: int = 0  # stored bytes brought
    converted_from: int | None = None  # the format version it had, when it was converted


class _Staged(Repository):
    """The target as the backup will stand in it: parts it holds are read from it, the others from the spool."""

    def __init__(self, target: Repository, spooled: dict[str, Path]) -> None:
        super().__init__(target.backend, target.keyring, allow_plaintext=True)
        self._spooled = spooled

    def stat_part(self, info, part):
        path = self._spooled.get(part.location)
        return path.stat().st_size if path is not None else super().stat_part(info, part)

    def open_stored(self, info, part):
        path = self._spooled.get(part.location)
        return path.open("rb") if path is not None else super().open_stored(info, part)


def bring(target: Repository, info: BackupInfo, fetch: Fetch) -> Arrival:
    """Bring ``info`` (as read from its source, which ``fetch`` reads) into ``target``; see the module doc."""
    converted, sources = _as_format_3(info, target)
    bid = converted.backup_id
    arrival = Arrival(bid, target.location(day_of(bid), bid), True,
                      converted_from=info.manifest.format_version if converted is not info else None)
    if target.exists(bid):
        try:
            there = target.get(bid)
        except BackupNotFound:
            there = None  # what a killed write left (the next locked operation sweeps it)
        except BackupError:
            there = False  # a damaged backup with that id: refused below, never replaced
        if there is False or (there is not None and there.stored_manifest != converted.stored_manifest):
            raise IntegrityError(f"{target.url} already holds a different backup with id {bid}; it is not replaced")
        arrival.arrived = there is None
    writer = target.begin(bid)
    spool = writer.spool()
    spooled: dict[str, Path] = {}
    try:
        for location, part in _unique_parts(converted).items():
            found = target.backend.stat(location)
            if found is not None and found.size == part.stored_bytes:
                continue
            path = spool / f"{secrets.token_hex(8)}.in"
            with open(path, "xb") as out:
                fetch(sources[location], out)
                out.flush()
                os.fsync(out.fileno())
            spooled[location] = path
        staged = BackupInfo(bid, day_of(bid), converted.manifest, arrival.location, converted.stored_manifest)
        check = check_backup(_Staged(target, spooled), staged, deep=True)
        if not check.ok:
            raise IntegrityError(f"backup {bid} does not verify: {'; '.join(check.problems)}; nothing was "
                                 f"written to {target.url}", payload=check.to_json())
        for location, part in _unique_parts(converted).items():
            if location in spooled:
                writer.store(part, spooled[location])
                arrival.bytes += part.stored_bytes
                if not arrival.arrived:
                    arrival.repaired.append(part.object or location)
            else:
                writer.adopt(part)
        if arrival.arrived:
            writer.commit_manifest(converted.manifest, converted.stored_manifest)
    except OSError as exc:
        raise StorageError(f"cannot bring backup {bid} into {target.url}: {exc.strerror or exc}") from None
    finally:
        writer.abort()  # (only the spool: a committed backup stays)
    return arrival


def _unique_parts(info: BackupInfo) -> dict[str, Part]:
    return {p.location: p for e in info.collections.values() for p in e.stored_parts()}


def _as_format_3(info: BackupInfo, target: Repository) -> tuple[BackupInfo, dict[str, Part]]:
    """``info`` in format 3 (converted when older) and, per target part location, the source's part."""
    if info.manifest.format_version >= 3:
        return info, _unique_parts(info)
    key = None
    if info.encrypted:
        key = target.keyring.get(info.key_fingerprint or "", f"backup {info.backup_id}")
    body = _copy.deepcopy({k: v for k, v in info.manifest.data.items() if k != "manifest_sha256"})
    body["format_version"] = FORMAT_VERSION
    body["converted_from"] = {"format_version": info.manifest.format_version,
                              "manifest_sha256": info.manifest.data.get("manifest_sha256")}
    sources: dict[str, Part] = {}
    for name, entry in info.collections.items():
        old = entry.parts[0]
        oid = key.content_id(old.sha256) if key is not None else old.sha256
        new = Part("full", f"{oid}.enc" if key is not None else view_name(name, "full", old.compressed), old.count,
                   old.bytes, old.sha256, old.compressed, old.schema, old.stored_bytes, old.plain_bytes, oid,
                   object_name(oid))
        sources[new.location] = old
        raw = body["collections"][name]
        for k in ("reused_from", "object"):
            raw.pop(k, None)
        raw.update({"file": new.file, "stored_bytes": new.stored_bytes, "plain_bytes": new.plain_bytes,
                    "parts": [new.to_json()]})
    manifest = Manifest.create(body)
    stored = encrypt_bytes(manifest.raw, key) if key is not None else manifest.raw
    return BackupInfo(info.backup_id, day_of(info.backup_id), manifest, info.location, stored), sources


def fetch_from(source: Repository, info: BackupInfo) -> Fetch:
    """Read parts from another repository, exactly as stored there."""
    def fetch(part: Part, out: BinaryIO) -> None:
        with source.open_stored(info, part) as fh:
            while chunk := fh.read(1 << 20):
                out.write(chunk)
    return fetch


__all__ = ["Arrival", "bring", "fetch_from"]
