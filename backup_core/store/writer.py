"""Writing one backup into a repository: data objects first, the manifest last (restic's order).

``write_part`` encodes documents into one CSV part in a local spool folder
(encrypted when a key is set), names it by its content and saves it as a data
object, unless the repository holds that object already: then it is shared,
never stored twice, whichever backup first stored it. ``commit`` writes the
manifest only

1. once every object the manifest refers to was proved present in this
   repository during this write (saved, or found by a ``stat``; an object it
   inherits from an earlier backup is looked at again), and
2. while this process holds the repository's lock (``RepositoryLock.check``);
   if the lock turns out lost right after the manifest was written, the
   manifest is removed again and the backup fails.

A local unencrypted root also gets the readable view: the backup's own parts
are hard links ``<day>/<backup_id>/<collection>.csv`` to their objects. The
writer is thread-safe for parallel jobs (each writes its own parts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .. import codec
from ..errors import IntegrityError, LockLost, StorageError
from ..fsutil import os_error_text
from .crypto import CHUNK as CRYPTO_CHUNK, CIPHER, EncryptingWriter, Key, encrypt_bytes
from .csvfile import PROGRESS_EVERY, CountingWriter, Spill, encode_csv
from .layout import MANIFEST, MANIFEST_ENC, view_name
from .manifest import FORMAT_VERSION, Manifest, Part, object_name
from .spool import new_spool


class BackupWriter:
    """One backup being written (see the module docstring)."""

    def __init__(self, repo, backup_id: str, day: str) -> None:
        self.repo, self.backup_id, self.day = repo, backup_id, day
        self.key: Key | None = repo.keyring.current
        self.present: dict[str, int] = {}  # object name -> stored size, proved present during this write
        self.saved_bytes = 0  # bytes this backup added to the repository
        self._spill_key = Key(os.urandom(32)) if self.key is not None else None
        self._spool: Path | None = None
        self._shown: list[str] = []  # readable files linked into the backup's folder (removed on abort)
        self._committed = False
        self._guard = threading.Lock()

    def spool(self) -> Path:
        with self._guard:
            if self._spool is None:
                self._spool = new_spool(self.repo.backend)
            return self._spool

    def _spool_error(self, exc: OSError) -> str:
        """Why writing into the spool failed: the backup root's disk (a local root), or the local spool folder."""
        spool = self.spool()
        local = self.repo.backend.local_temp()
        return os_error_text(exc, "the backup root" if local is not None and spool.is_relative_to(local)
                             else f"the spool folder {spool.parent} (BACKUP_CACHE_DIR)")

    # ---- parts
    @contextlib.contextmanager
    def spill(self, docs: Iterable[bytes], *, on_document: Callable[[bytes], object] | None = None,
              progress: Callable[[int], None] | None = None) -> Iterator[Spill]:
        """Read ``docs`` once into a spill file of the spool (the first pass); ``on_document(raw)`` sees
        each document as it goes by."""
        path = self.spool() / f"{secrets.token_hex(8)}.spill"
        try:
            with Spill(path, self._spill_key) as spill:
                for raw in docs:
                    spill.add(raw)
                    if on_document is not None:
                        on_document(raw)
                    if progress and spill.count % PROGRESS_EVERY == 0:
                        progress(spill.count)
                spill.finish()
                yield spill
        except OSError as exc:
            raise StorageError(f"cannot write backup {self.backup_id}: reading the documents into "
                               f"{path.parent} failed: {self._spool_error(exc)}") from None

    def write_spilled(self, collection: str, kind: str, spill: Spill, schema, *, compress: bool,
                      select: bytearray | None = None, progress: Callable[[int], None] | None = None) -> Part:
        """Encode the spilled documents (those ``select`` marks) as one part of ``collection`` and store it
        (or share it)."""
        path = self.spool() / f"{secrets.token_hex(8)}.part"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as raw:
                counter = CountingWriter(raw)
                sink = EncryptingWriter(counter, self.key) if self.key is not None else counter
                written = encode_csv(spill.documents(select), schema, sink, compress=compress,  # type: ignore[arg-type]
                                     progress=progress, done_before=spill.count)
                if self.key is not None:
                    sink.close()
                raw.flush()
                os.fsync(raw.fileno())
            oid = self.key.content_id(written.sha256) if self.key is not None else written.sha256
            part = Part(kind, f"{oid}.enc" if self.key is not None else view_name(collection, kind, compress),
                        written.count, written.bytes, written.sha256, compress, written.schema, counter.bytes,
                        written.plain_bytes, oid, object_name(oid))
            self.store(part, path)
            return part
        except OSError as exc:
            raise StorageError(f"cannot write backup {self.backup_id}: writing collection {collection} failed: "
                               f"{self._spool_error(exc)}") from None
        finally:
            path.unlink(missing_ok=True)

    def write_part(self, collection: str, kind: str, docs: Iterable[bytes], *, compress: bool,
                   progress: Callable[[int], None] | None = None) -> Part:
        """Encode ``docs`` (raw BSON) into one part of ``collection`` and store it (or share it)."""
        with self.spill(docs, progress=progress) as spill:
            return self.write_spilled(collection, kind, spill, spill.schema(), compress=compress, progress=progress)

    def write_blob(self, kind: str, data: bytes, *, count: int) -> Part:
        """Store ``data`` (a document index) as a data object of its own; returns its part."""
        sha = hashlib.sha256(data).hexdigest()
        stored = encrypt_bytes(data, self.key) if self.key is not None else data
        oid = self.key.content_id(sha) if self.key is not None else sha
        part = Part(kind, f"{oid}.idx", count, len(data), sha, False, codec.Schema(), len(stored), -1, oid,
                    object_name(oid))
        self.store(part, stored)
        return part

    def store(self, part: Part, source: "Path | bytes") -> None:
        """Save ``part``'s object unless the repository holds it already (then it is shared)."""
        backend = self.repo.backend
        self.repo.check_lock()
        if self._seen(part):
            return
        found = backend.stat(part.location)
        if found is None or found.size != part.stored_bytes:
            if found is not None:
                # same content, wrong size: a damaged copy; the good bytes replace it (and mend
                # every backup that shares it)
                backend.remove(part.location)
            if backend.save(part.location, source):
                with self._guard:
                    self.saved_bytes += part.stored_bytes
        with self._guard:
            self.present[part.location] = part.stored_bytes

    def adopt(self, part: Part) -> None:
        """Refer to ``part`` of an earlier backup: it must be present now (looked at, not assumed)."""
        if self._seen(part):
            return
        found = self.repo.backend.stat(part.location)
        if found is None or found.size != part.stored_bytes:
            raise IntegrityError(f"backup {self.backup_id} cannot build on data object {part.object}: it is "
                                 "missing or damaged in the repository", hint="take a full backup")
        with self._guard:
            self.present[part.location] = part.stored_bytes

    def _seen(self, part: Part) -> bool:
        """Whether this backup saw ``part``'s object in the repository already (under its lock)."""
        with self._guard:
            return self.present.get(part.location) == part.stored_bytes

    # ---- the manifest
    def commit(self, body: dict) -> Manifest:
        """Seal the manifest ``body`` (collections: name -> {"count", "parts", "indexes", "options",
        "doc_index"?}, parts as ``Part``) and commit it (see the module docstring)."""
        body = dict(body, format_version=FORMAT_VERSION)
        body["collections"] = {n: _entry_json(e) for n, e in body["collections"].items()}
        if self.key is not None:
            body["encryption"] = {"cipher": CIPHER, "key_fingerprint": self.key.fingerprint,
                                  "chunk_bytes": CRYPTO_CHUNK}
        manifest = Manifest.create(body)
        stored = manifest.raw if self.key is None else encrypt_bytes(manifest.raw, self.key)
        self.commit_manifest(manifest, stored)
        return manifest

    def commit_manifest(self, manifest: Manifest, stored: bytes) -> None:
        """Commit ``manifest`` stored as ``stored`` (written by ``commit``, or copied as it is)."""
        backend = self.repo.backend
        folder = f"{self.day}/{self.backup_id}"
        if manifest.backup_id != self.backup_id:
            raise StorageError(f"manifest of {manifest.backup_id} cannot commit backup {self.backup_id}")
        needed = {p.location: p.stored_bytes for e in manifest.collections.values() for p in e.stored_parts()}
        for name, size in needed.items():
            if self.present.get(name) != size:
                raise IntegrityError(f"backup {self.backup_id}: data object {name} is not in {self.repo.url} as "
                                     "the manifest says; nothing was committed")
        self.repo.check_lock(writing=True)
        if manifest.encryption is None and manifest.format_version >= 3:
            for entry in manifest.collections.values():
                for part in entry.own_parts():
                    self._show(part, f"{folder}/{part.file}")
        name = f"{folder}/{MANIFEST_ENC if manifest.encryption else MANIFEST}"
        self.repo.check_lock(writing=True)
        if not backend.save(name, stored):
            raise StorageError(f"backup {self.backup_id} already exists in {self.repo.url}")
        try:
            self.repo.check_lock(writing=True)
        except LockLost:
            backend.remove(name)  # written after the lock was lost: not committed after all
            raise
        self._committed = True
        self.repo.forget_cached()
        self._drop_spool()

    def _show(self, part: Part, name: str) -> None:
        backend = self.repo.backend
        self._shown.append(name)
        if backend.link(part.location, name):
            return
        if backend.local_temp() is not None:  # a local folder that cannot link: a copy stays readable
            with backend.load(part.location) as fh:
                backend.save(name, fh)

    def abort(self) -> None:
        """Forget this write: its spool and readable files go now; objects it saved go with the next clean-up."""
        if not self._committed:
            for name in self._shown:
                try:
                    self.repo.backend.remove(name)
                except Exception:  # noqa: BLE001 - best effort: the next locked operation sweeps the folder
                    pass
        self._drop_spool()

    def _drop_spool(self) -> None:
        with self._guard:
            spool, self._spool = self._spool, None
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def write_documents(repo, database: str, collections: dict, *, trigger: str = "manual", user: str = "tool",
                    extra: dict | None = None) -> str:
    """A backup of raw BSON documents that do not come from a database (benchmarks, tests, tools):
    ``collections`` maps a name to its documents, or to (documents, index specs, options) in the
    manifest's JSON dialect. Written under the repository's lock like any backup; returns its id."""
    from ..timeutil import iso, utc_now
    from .layout import day_for

    now = utc_now()
    backup_id = repo.new_backup_id(now)
    writer = repo.begin(backup_id, day_for(now))
    try:
        with repo.lock("write documents", 10.0):
            entries = {}
            for name, value in collections.items():
                docs, indexes, options = value if isinstance(value, tuple) else (value, [], {})
                part = writer.write_part(name, "full", iter(docs), compress=False)
                entries[name] = {"count": part.count, "parts": [part], "indexes": indexes, "options": options}
            writer.commit({"backup_id": backup_id, "created_at": iso(now), "database": database, "trigger": trigger,
                           "user": user, "day_of_week": day_for(now), "backup_interval_hours": None,
                           "record_counts": {n: e["count"] for n, e in entries.items()}, "duration_s": 0.0,
                           "tool": "backup_core", "collections": entries, **(extra or {})})
    except BaseException:
        writer.abort()
        raise
    return backup_id


def _entry_json(entry: dict) -> dict:
    parts: list[Part] = list(entry["parts"])
    own = next((p for p in reversed(parts) if p.kind != "deleted"), parts[0])
    # file, bytes and sha256 of the collection's own file, for people reading the manifest; the parts
    # say everything else
    out = {"file": own.file, "count": entry["count"], "bytes": own.bytes, "sha256": own.sha256,
           "compressed": own.compressed, "indexes": entry.get("indexes", []), "options": entry.get("options", {}),
           "parts": [p.to_json() for p in parts]}
    index = entry.get("doc_index")
    if index is not None:
        out["doc_index"] = {"object": index.object, "count": index.count, "bytes": index.bytes,
                            "sha256": index.sha256, "stored_bytes": index.stored_bytes}
    return out


__all__ = ["BackupWriter", "write_documents"]
