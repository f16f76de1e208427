"""The audit log: append-only, hash-chained, anchored outside itself, authenticated when a key is configured.

Where: one JSON object per line in ``<root>/.audit/audit.jsonl`` for a local
backup root (created owner-only: the folder 0700, the file 0600); one small
object per entry under ``<prefix>/.audit/entries/`` for an object store
(``BlobAuditLog``).

The chain. Every entry carries ``seq`` (1, 2, 3, ...), ``prev`` (the
``hash`` of the entry before it) and ``hash`` (SHA-256 of the entry's
canonical JSON without ``hash`` and ``mac``), so editing, inserting or
removing an entry anywhere breaks the chain at that point.

Authentication. When the store's keyring has a current key
(``BACKUP_KEY_FILE``), every entry also carries ``kid`` (the key's
fingerprint, inside the hash) and ``mac``: HMAC-SHA256 of its ``hash`` under
a key derived from the backup key with HKDF-SHA256 (info ``backup_core audit
log v1``). Whoever lacks the key can neither recompute a ``mac`` after an
edit nor append an entry that verifies; once an authenticated entry exists,
a later entry without a ``mac`` is reported (verified with the key).

Anchors. A chain alone cannot show entries cut off its end, nor a log
rewritten from the start with every hash recomputed. So the head (``seq``,
``hash``, and ``kid``) is also kept outside the file: in every backup's
manifest (``audit_head``, written when the backup is made; authenticated
with the backup when it is encrypted) and in the metadata database
(collection ``audit_head``, one document per log, moved forward after every
append by a process that has opened the database: ``anchor_in``).
``verify(anchors)`` checks that the log still holds each anchored entry,
unchanged: a deleted, emptied or cut log, or one rewritten up to an anchor,
fails. ``check(settings)`` gathers the anchors and verifies (``python -m
backup_core audit --verify``). Exactly what is and is not detected, with and
without a key: docs/RELIABILITY.md.

Writing. Local entries are appended under a ``filelock`` (threads and
processes), each with one ``write`` on an ``O_APPEND`` descriptor followed by
``fsync``. A line torn by a crash is kept as it is: the next entry's ``prev``
is the SHA-256 of its raw bytes, so the chain runs through it and only a real
edit breaks it.

Operations (``operation.py``) write two entries: ``outcome: "started"`` before
they change anything and their outcome (``ok``, ``error``, ``refused``) after,
linked by ``op``; an operation killed in between shows as started without an
outcome (``read`` marks it ``interrupted`` once its process is gone).
Instant events (login, logout, set-password) are one entry each.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from filelock import FileLock

from .config import mask_uri
from .errors import IntegrityError, StorageError
from .fsutil import FULL_ERRNOS, READ_ONLY_ERRNOS, os_error_text
from .locks import process_alive
from .timeutil import now_iso

log = logging.getLogger(__name__)

AUDIT_DIR = ".audit"
AUDIT_FILE = "audit.jsonl"
HEAD_COLLECTION = "audit_head"  # in the metadata database: one anchor document per log
GENESIS = "0" * 64
OUTCOMES = ("started", "ok", "error", "refused")
_CHAIN_KEYS = ("seq", "prev", "hash", "kid", "mac")
_MAC_INFO = b"backup_core audit log v1"
# at most this many problems are spelled out in the text report (all are in the JSON)
_SHOWN_PROBLEMS = 8


def audit_path(root: Path | str) -> Path:
    return Path(root) / AUDIT_DIR / AUDIT_FILE


def _scrub(value: Any) -> Any:
    """Never let a password in a URI reach the log."""
    if isinstance(value, str) and "://" in value and "@" in value:
        return mask_uri(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _canonical(entry: dict) -> bytes:
    body = {k: v for k, v in entry.items() if k not in ("hash", "mac")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


@functools.lru_cache(maxsize=16)
def _mac_key(material: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(material)


def entry_mac(key, hash_hex: str) -> str:
    """The ``mac`` of an entry whose ``hash`` is ``hash_hex``, under backup key ``key`` (a ``crypto.Key``)."""
    return hmac.new(_mac_key(key.material), b"entry\x00" + hash_hex.encode("ascii"), hashlib.sha256).hexdigest()


def _is_chained(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("hash"), str) and isinstance(obj.get("prev"), str)
            and isinstance(obj.get("seq"), int) and not isinstance(obj.get("seq"), bool))


def _link_of(raw: bytes) -> tuple[str, int]:
    """(the ``prev`` an entry after this line must carry, the ``seq`` that line had or 0)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if _is_chained(obj):
        return obj["hash"], obj["seq"]
    return hashlib.sha256(raw).hexdigest(), 0


def _parse_chained(raw: bytes | None) -> dict | None:
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if _is_chained(obj) else None


def _key_of(keyring, fingerprint: str):
    for key in getattr(keyring, "keys", ()) or ():
        if key.fingerprint == fingerprint:
            return key
    return None


class AuditLog:
    """An append-only, hash-chained audit log (see the module docstring). Subclasses store the lines."""

    where = ""
    keyring = None  # a ``crypto.Keyring``: entries are authenticated with its current key
    _chain: str | None = None

    def _append_line(self, build) -> dict:
        """Append ``build(prev_line, lines_before)`` (the entry for a log whose last line is ``prev_line``)
        atomically; returns the entry."""
        raise NotImplementedError

    def lines(self) -> Iterator[bytes]:
        """Every line, oldest first."""
        raise NotImplementedError

    def lines_newest_first(self) -> Iterator[bytes]:
        raise NotImplementedError

    # ---- writing
    def append(self, entry: dict) -> dict:
        """Add ``seq``, ``prev``, ``hash`` (and ``kid``, ``mac`` with a key) to ``entry`` and append it
        durably; returns it."""
        entry = json.loads(json.dumps(_scrub(entry), default=str, ensure_ascii=False))
        for k in _CHAIN_KEYS:
            entry.pop(k, None)
        key = getattr(self.keyring, "current", None)

        def build(last: bytes | None, lines_before: int) -> tuple[dict, bytes]:
            prev, seq = _link_of(last) if last is not None else (GENESIS, 0)
            if seq == 0 and last is not None:
                seq = lines_before  # after unchained lines, continue their numbering
            chained = dict(entry, seq=seq + 1, prev=prev)
            if key is not None:
                chained["kid"] = key.fingerprint
            chained["hash"] = entry_hash(chained)
            if key is not None:
                chained["mac"] = entry_mac(key, chained["hash"])
            return chained, json.dumps(chained, ensure_ascii=False).encode("utf-8") + b"\n"

        written = self._append_line(build)
        _publish(self, _head_of(written))
        return written

    def record(self, *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
        entry = {"at": now_iso(), "user": user, "action": action, "outcome": outcome}
        entry.update({k: v for k, v in details.items() if v is not None})
        return self.append(entry)

    # ---- reading
    def entries_newest_first(self) -> Iterator[dict]:
        """Every entry, newest first, as ``read`` marks them (unfinished, interrupted); lazily."""
        finished: set[str] = set()
        for raw in self.lines_newest_first():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(entry, dict):
                continue
            op = entry.get("op")
            if entry.get("outcome") == "started" and isinstance(op, str):
                if op not in finished:
                    entry["unfinished"] = True
                    if not process_alive(entry.get("pid"), entry.get("pid_started"), entry.get("host")):
                        entry["interrupted"] = True
            elif isinstance(op, str):
                finished.add(op)
            yield entry

    def read(self, limit: int | None = 100, flt: "AuditFilter | None" = None) -> list[dict]:
        """Entries newest first, at most ``limit`` (None: all); unreadable lines are skipped.

        A ``started`` entry whose operation has no outcome yet gets
        ``"unfinished": true`` and, when its process is gone, ``"interrupted": true``.
        """
        if limit is not None and limit <= 0:
            return []
        out: list[dict] = []
        for entry in self.entries_newest_first():
            if flt is None or flt.match(entry):
                out.append(entry)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def head(self) -> dict | None:
        """The newest chained entry as an anchor (``log``, ``chain``, ``seq``, ``hash``, ``kid``, ``at``),
        or None for an empty log."""
        for raw in self.lines_newest_first():
            obj = _parse_chained(raw)
            if obj is not None:
                return {"log": self.where, "chain": self.chain_id(), **_head_of(obj)}
        return None

    def chain_id(self) -> str | None:
        """The ``hash`` of the first chained entry: names this chain wherever the log is moved."""
        if self._chain is None:
            for raw in self.lines():
                obj = _parse_chained(raw)
                if obj is not None:
                    self._chain = obj["hash"]
                    break
        return self._chain

    def verify(self, anchors: Iterable["Anchor"] = ()) -> "ChainReport":
        return verify_lines(self.lines(), self.where, self.keyring, list(anchors), self.chain_id())


def _head_of(entry: dict) -> dict:
    head = {"seq": entry.get("seq"), "hash": entry.get("hash"), "at": entry.get("at")}
    if entry.get("kid"):
        head["kid"] = entry["kid"]
    return head


class FileAuditLog(AuditLog):
    """The audit log as one local file, appended under a ``filelock``."""

    def __init__(self, path: Path | str, keyring=None) -> None:
        self.path = Path(path).absolute()
        self.where = str(self.path)
        self.keyring = keyring

    def _lock(self) -> FileLock:
        return FileLock(str(self.path.with_name(self.path.name + ".lock")), is_singleton=True,
                        thread_local=True, mode=0o600)

    def _append_line(self, build) -> dict:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with self._lock():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    last, torn = _last_line(fd)
                    entry, line = build(last, _count_lines(fd) if last is not None else 0)
                    os.write(fd, (b"\n" if torn else b"") + line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            cause = "read-only" if exc.errno in READ_ONLY_ERRNOS else "full" if exc.errno in FULL_ERRNOS else ""
            raise AuditUnwritable(f"cannot write the audit log {self.path}: {os_error_text(exc)}", cause) from None
        return entry

    def lines(self) -> Iterator[bytes]:
        if not self.path.is_file():
            return
        try:
            fh = self.path.open("rb")
        except OSError as exc:
            raise StorageError(f"cannot read the audit log {self.path}: {exc.strerror}") from None
        with fh:
            for line in fh:
                yield line.rstrip(b"\n")

    def lines_newest_first(self) -> Iterator[bytes]:
        if not self.path.is_file():
            return iter(())
        return _lines_reversed(self.path)


class AuditUnwritable(StorageError):
    """The audit log cannot be written: ``cause`` is "read-only", "full" or "" (something else)."""

    def __init__(self, message: str, cause: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.cause = cause


class PreconditionFailed(Exception):
    """A conditional write lost a race (the object exists already)."""


# the newest entry (raw bytes, seq) each object-store log of this process last wrote or saw
_blob_heads: dict[str, tuple[bytes, int]] = {}
_blob_chains: dict[str, str] = {}  # the chain id of each log this process read: it never changes
_blob_guard = threading.Lock()


class BlobAuditLog(AuditLog):
    """The audit log in an object store without append: one small object per entry.

    Entry ``seq`` is the object ``<prefix>entries/<seq, 12 digits>.json``,
    written with create-if-absent: of two writers racing for the same ``seq``
    exactly one succeeds; the other reads the winner's entry and appends after
    it, so the chain stays one chain across hosts. An append is one ``put``
    of a few hundred bytes (plus one listing the first time a process appends,
    and one ``get`` per entry another process appended meanwhile). Logs of
    older versions kept numbered segments of JSON lines
    (``<prefix>segment-<n>.jsonl``); they are read as the older part of the
    log and continued.

    ``blobs`` needs only: ``list(prefix)`` (every name under ``prefix``, any
    order), ``get(name)`` (``(bytes, etag)``, or None when absent) and
    ``put(name, data, if_none_match=True)`` (raises ``PreconditionFailed``
    when the name exists).
    """

    ENTRIES = "entries/"
    RETRIES = 1000
    READERS = 8  # entries fetched at a time when reading

    def __init__(self, blobs, prefix: str, where: str, keyring=None) -> None:
        self.blobs, self.prefix, self.where, self.keyring = blobs, prefix, where, keyring

    def _entry_name(self, seq: int) -> str:
        return f"{self.prefix}{self.ENTRIES}{seq:012d}.json"

    def _names(self) -> tuple[list[str], list[str]]:
        """(old segment names, entry names), each oldest first."""
        segments, entries = [], []
        for name in self.blobs.list(self.prefix):
            rest = name[len(self.prefix):] if name.startswith(self.prefix) else name
            if rest.startswith(self.ENTRIES) and rest.endswith(".json"):
                entries.append(name)
            elif "/" not in rest and rest.startswith("segment-"):
                segments.append(name)
        return sorted(segments), sorted(entries)

    def _get(self, name: str) -> bytes | None:
        got = self.blobs.get(name)
        return None if got is None else got[0]

    def _segment_lines(self, name: str) -> list[bytes]:
        data = self._get(name) or b""
        return [ln for ln in data.split(b"\n") if ln.strip()]

    def _find_head(self) -> tuple[bytes | None, int]:
        with _blob_guard:
            cached = _blob_heads.get(self.where)
        if cached is not None:
            return cached
        segments, entries = self._names()
        if entries:
            data = (self._get(entries[-1]) or b"").rstrip(b"\n")
            return data, int(entries[-1].rsplit("/", 1)[-1].split(".")[0])
        if segments:
            lines = self._segment_lines(segments[-1])
            if lines:
                _, seq = _link_of(lines[-1])
                return lines[-1], seq
        return None, 0

    def _append_line(self, build) -> dict:
        last, last_seq = self._find_head()
        for _ in range(self.RETRIES):
            entry, line = build(last, last_seq)
            name = self._entry_name(entry["seq"])
            try:
                self.blobs.put(name, line, if_none_match=True)
            except PreconditionFailed:
                # another writer took this seq: continue after its entry
                data = self._get(name)
                seen = _parse_chained(data.rstrip(b"\n")) if data is not None else None
                if seen is None or seen["seq"] != entry["seq"]:
                    raise StorageError(f"cannot write the audit log {self.where}: its entry {name} is damaged "
                                       "(run `python -m backup_core audit --verify`)") from None
                last, last_seq = data.rstrip(b"\n"), seen["seq"]  # type: ignore[union-attr]
                continue
            with _blob_guard:
                _blob_heads[self.where] = (line.rstrip(b"\n"), entry["seq"])
            return entry
        raise StorageError(f"cannot write the audit log {self.where}: too many concurrent writers")

    def _entry_lines(self, names: list[str]) -> Iterator[bytes]:
        if not names:
            return
        with ThreadPoolExecutor(max_workers=self.READERS, thread_name_prefix="audit-read") as pool:
            start, batch = 0, self.READERS  # small first: most readers stop after a few entries
            while start < len(names):
                for data in pool.map(self._get, names[start:start + batch]):
                    if data is not None and data.strip():
                        yield data.rstrip(b"\n")
                start, batch = start + batch, min(batch * 4, 256)

    def head(self) -> dict | None:
        last, _seq = self._find_head()  # this process's last append, or the newest entry object
        obj = _parse_chained(last) if last is not None else None
        if obj is None:
            return super().head()  # an older log without chained entries at its end
        return {"log": self.where, "chain": self.chain_id(), **_head_of(obj)}

    def chain_id(self) -> str | None:
        if self._chain is None:
            with _blob_guard:
                self._chain = _blob_chains.get(self.where)
        if self._chain is None:
            segments, entries = self._names()
            first = [ln for name in segments[:1] for ln in self._segment_lines(name)[:1]] or \
                [(self._get(name) or b"").rstrip(b"\n") for name in entries[:1]]
            obj = _parse_chained(first[0]) if first else None
            if obj is None:
                return super().chain_id()  # unchained lines first: look further
            self._chain = obj["hash"]
            with _blob_guard:
                _blob_chains[self.where] = self._chain
        return self._chain

    def lines(self) -> Iterator[bytes]:
        segments, entries = self._names()
        for name in segments:
            yield from self._segment_lines(name)
        yield from self._entry_lines(entries)

    def lines_newest_first(self) -> Iterator[bytes]:
        segments, entries = self._names()
        yield from self._entry_lines(entries[::-1])
        for name in reversed(segments):
            yield from reversed(self._segment_lines(name))


def _last_line(fd: int) -> tuple[bytes | None, bool]:
    """The last non-empty line of the open file and whether the file ends without a newline."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, False
    torn = os.pread(fd, 1, size - 1) != b"\n"
    pos, tail = size, b""
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        tail = os.pread(fd, step, pos) + tail
        stripped = tail.rstrip(b"\n")
        cut = stripped.rfind(b"\n")
        if cut >= 0:
            return stripped[cut + 1:], torn
    stripped = tail.rstrip(b"\n")
    return (stripped or None), torn


def _count_lines(fd: int) -> int:
    n, pos, size = 0, 0, os.fstat(fd).st_size
    while pos < size:
        chunk = os.pread(fd, 1 << 20, pos)
        n += chunk.count(b"\n")
        pos += len(chunk)
    return n


def _lines_reversed(path: Path, block: int = 65536) -> Iterator[bytes]:
    """Non-empty lines of a file, last first, reading from the end in blocks."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        rest = b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + rest
            lines = chunk.split(b"\n")
            rest = lines[0]
            for line in reversed(lines[1:]):
                if line.strip():
                    yield line
        if rest.strip():
            yield rest


# ---------------------------------------------------------------- anchors

@dataclass(frozen=True)
class Anchor:
    """The head of a log as recorded somewhere else (a backup's manifest, the metadata database)."""

    source: str       # for people: "backup 20261124T143022Z", "the metadata database x_backup_meta"
    seq: int
    hash: str
    log: str | None = None    # the log it was taken from (``AuditLog.where``)
    chain: str | None = None  # that log's chain id (the hash of its first entry)
    kid: str | None = None    # the key the anchored entry was authenticated with
    at: str | None = None
    # True: it belongs to this log whatever ``log``/``chain`` say (the metadata database's anchor of it)
    own: bool = False

    @classmethod
    def from_json(cls, source: str, data: Any, *, own: bool = False) -> "Anchor | None":
        if not isinstance(data, dict):
            return None
        seq, h = data.get("seq"), data.get("hash")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(h, str):
            return None
        text = lambda k: data.get(k) if isinstance(data.get(k), str) else None  # noqa: E731
        return cls(source, seq, h, text("log"), text("chain"), text("kid"), text("at"), own)

    def applies_to(self, where: str, chain: str | None) -> bool:
        """Whether this anchor speaks about the log at ``where`` (a backup copied from another root
        carries the head of that root's log: it is not ours)."""
        return self.own or self.log == where or (chain is not None and self.chain == chain)


def anchor_in(log_: AuditLog, meta_db) -> None:
    """Keep the head of ``log_`` in ``meta_db`` (a pymongo ``Database``, the metadata database) from now
    on: after every append of this process, and once now. Best effort: an unreachable database is
    skipped (the anchor then lags; it never moves back)."""
    sink = _HeadSink(meta_db)
    with _sinks_guard:
        sinks = _sinks.setdefault(log_.where, {})
        sinks[sink.key] = sink
        while len(sinks) > 8:  # bounded: a long-running process opens many connections over time
            sinks.pop(next(iter(sinks)))
    head = log_.head()
    if head is not None:
        sink.publish(log_.where, head)


class _HeadSink:
    def __init__(self, meta_db) -> None:
        self.key = (id(meta_db.client), meta_db.name)
        self.coll = meta_db[HEAD_COLLECTION]

    def publish(self, where: str, head: dict) -> bool:
        import pymongo
        from pymongo.errors import DuplicateKeyError, PyMongoError

        doc = {"seq": head["seq"], "hash": head["hash"], "at": head.get("at"), "kid": head.get("kid"),
               "chain": head.get("chain"), "log": where, "updated_at": now_iso()}
        try:
            with pymongo.timeout(2.0):
                # only forward: a slower process never moves the anchor back
                self.coll.update_one({"_id": where, "seq": {"$lt": head["seq"]}}, {"$set": doc}, upsert=True)
        except DuplicateKeyError:
            pass  # the anchor is at this seq or beyond already
        except PyMongoError as exc:
            log.debug("cannot anchor the audit log in %s: %s", self.coll.database.name, exc)
            return False
        return True


_sinks: dict[str, dict[tuple, _HeadSink]] = {}
_sinks_guard = threading.Lock()


def _publish(log_: AuditLog, head: dict) -> None:
    with _sinks_guard:
        sinks = list(_sinks.get(log_.where, {}).values())
    if not sinks:
        return
    if "chain" not in head:
        head = dict(head, chain=log_.chain_id() if head.get("seq") != 1 else head.get("hash"))
    for sink in sinks:
        if not sink.publish(log_.where, head):
            with _sinks_guard:
                _sinks.get(log_.where, {}).pop(sink.key, None)


def meta_anchor(log_: AuditLog, meta_db) -> Anchor | None:
    """The anchor of ``log_`` kept in the metadata database ``meta_db`` (None if there is none)."""
    doc = meta_db[HEAD_COLLECTION].find_one({"_id": log_.where})
    return Anchor.from_json(f"the metadata database {meta_db.name}", doc, own=True) if doc else None


def manifest_anchors(backups) -> list[Anchor]:
    """The ``audit_head`` of every backup (``BackupInfo``) that recorded one."""
    out = []
    for info in backups:
        a = Anchor.from_json(f"backup {info.backup_id}", info.manifest.get("audit_head"))
        if a is not None:
            out.append(a)
    return out


def check(settings, store=None) -> "ChainReport":
    """Verify the log of the configured backup root against every anchor that can be read: the
    manifests of its backups and the metadata database (a database that cannot be reached is noted)."""
    from .context import open_store
    from .errors import BackupError

    store = store if store is not None else open_store(settings)
    log_ = store.audit_log()
    notes: list[str] = []
    errors: list[str] = []
    locked: list[dict] = []
    anchors = manifest_anchors(store.list_backups(errors=errors, locked=locked))
    if locked:
        notes.append(f"{len(locked)} encrypted backup(s) whose key is not configured: their anchors were not "
                     "checked")
    try:
        from .scheduler.metadb import meta

        with meta(settings, "reading the audit log's anchor") as db:
            a = meta_anchor(log_, db)
        if a is not None:
            anchors.append(a)
    except BackupError as exc:
        notes.append(f"the metadata database could not be read, its anchor was not checked: {exc}")
    report = log_.verify(anchors)
    report.warnings += notes
    return report


# ---------------------------------------------------------------- verification

@dataclass
class ChainReport:
    """What ``verify`` found: ``ok`` unless an entry was edited, inserted, removed, forged or cut off."""

    path: str
    entries: int = 0
    chained: int = 0
    legacy: int = 0
    authenticated: int = 0  # entries whose mac was checked with a configured key
    unchecked: int = 0      # entries with a mac of a key that is not configured
    head: dict | None = None
    broken_at: dict | None = None
    anchors: dict = field(default_factory=lambda: {"checked": 0, "ok": 0, "other_logs": 0, "newest": None})
    problems: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "path": self.path, "entries": self.entries, "chained": self.chained,
                "legacy": self.legacy, "authenticated": self.authenticated, "unchecked": self.unchecked,
                "head": self.head, "broken_at": self.broken_at, "anchors": self.anchors,
                "problems": self.problems, "warnings": self.warnings}

    def to_text(self) -> str:
        head = self.head or {}
        extra = [f"{self.chained} chained"]
        if self.legacy:
            extra.append(f"{self.legacy} older unchained")
        if self.authenticated:
            extra.append(f"{self.authenticated} authenticated")
        lines = [f"audit log {self.path}: {'chain OK' if self.ok else 'CHAIN BROKEN'} "
                 f"({self.entries} entries, {', '.join(extra)})"]
        if head:
            lines.append(f"  head: seq {head.get('seq')}, hash {head.get('hash')}")
        a = self.anchors
        if a["checked"]:
            lines.append(f"  anchors: {a['ok']} of {a['checked']} match (backup manifests, metadata database)")
        for p in self.problems[:_SHOWN_PROBLEMS]:
            where = f"line {p['line']} (seq {p.get('seq', '?')}, {p.get('at') or 'no time'})" \
                if p.get("line") else "the log"
            lines.append(f"  broken at {where}: {p['reason']}")
        if len(self.problems) > _SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - _SHOWN_PROBLEMS} more problem(s) (--json lists all)")
        lines += [f"  note: {w}" for w in self.warnings]
        return "\n".join(lines)


def verify_chain(path: Path | str, keyring=None) -> ChainReport:
    """Check every link of a local audit file (see the module docstring)."""
    return FileAuditLog(path, keyring).verify()


def verify_lines(lines: Iterable[bytes], where: str, keyring=None, anchors: list[Anchor] | None = None,
                 chain: str | None = None) -> ChainReport:
    """Walk every line, oldest first: links, sequence, authentication; then every anchor."""
    report = ChainReport(where)
    mine = [a for a in anchors or () if a.applies_to(where, chain)]
    report.anchors["other_logs"] = len(anchors or ()) - len(mine)
    wanted = {a.seq for a in mine}
    seen: dict[int, tuple[str, bool]] = {}  # anchored seq -> (hash, mac verified)
    prev, expected_seq, started = GENESIS, None, False
    first_authenticated: int | None = None
    unauthenticated_after = 0
    other_keys: set[str] = set()
    can_check = bool(getattr(keyring, "keys", ()))
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        report.entries += 1
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not _is_chained(obj):
            if started and isinstance(obj, dict):
                _problem(report, lineno, obj, "an entry without a hash after the chain began "
                                              "(inserted by hand, or its chain fields were stripped)")
            elif obj is None:
                report.warnings.append(f"line {lineno} is not a complete entry (torn by a crash?)")
            else:
                report.legacy += 1
            prev = hashlib.sha256(raw).hexdigest()
            continue
        started = True
        report.chained += 1
        if obj["prev"] != prev:
            _problem(report, lineno, obj, "does not follow the line before it: an entry before it "
                                          "was removed, inserted or changed")
        elif entry_hash(obj) != obj["hash"]:
            _problem(report, lineno, obj, "its content does not match its hash: the entry was edited")
        elif expected_seq is not None and obj["seq"] != expected_seq:
            _problem(report, lineno, obj, f"sequence number {obj['seq']}, expected {expected_seq}: "
                                          "entries were removed or reordered")
        verified = _check_mac(report, lineno, obj, keyring, other_keys)
        if "mac" in obj or "kid" in obj:
            if first_authenticated is None:
                first_authenticated = obj["seq"]
        elif first_authenticated is not None:
            if can_check:
                _problem(report, lineno, obj, f"not authenticated, although the entries from seq "
                                              f"{first_authenticated} on are: appended by someone without the "
                                              "key (forged), or by a process without BACKUP_KEY_FILE")
            else:
                unauthenticated_after += 1
        if obj["seq"] in wanted:
            seen[obj["seq"]] = (obj["hash"], verified)
        prev, expected_seq = obj["hash"], obj["seq"] + 1
        report.head = _head_of(obj)
    if other_keys:
        report.warnings.append(f"{report.unchecked} entries are authenticated with key(s) "
                               f"{', '.join(sorted(other_keys))}, which is not configured: their macs were "
                               "not checked (set BACKUP_KEY_FILE or BACKUP_KEY_FILES to check them)")
    if unauthenticated_after:
        report.warnings.append(f"{unauthenticated_after} entries after the first authenticated one are not "
                               "authenticated; configure the key to judge them")
    _check_anchors(report, mine, seen, keyring)
    return report


def _check_mac(report: ChainReport, lineno: int, obj: dict, keyring, other_keys: set[str]) -> bool:
    kid, mac = obj.get("kid"), obj.get("mac")
    if kid is None and mac is None:
        return False
    if not isinstance(kid, str) or not isinstance(mac, str):
        _problem(report, lineno, obj, "its authentication is incomplete (kid or mac missing): stripped?")
        return False
    key = _key_of(keyring, kid)
    if key is None:
        report.unchecked += 1
        other_keys.add(kid)
        return False
    if not hmac.compare_digest(entry_mac(key, obj["hash"]), mac):
        _problem(report, lineno, obj, f"its authentication (key {kid}) does not match: the entry was "
                                      "edited or forged without the key")
        return False
    report.authenticated += 1
    return True


def _check_anchors(report: ChainReport, anchors: list[Anchor], seen: dict[int, tuple[str, bool]],
                   keyring) -> None:
    head_seq = (report.head or {}).get("seq") or 0
    for a in sorted(anchors, key=lambda a: a.seq, reverse=True):
        report.anchors["checked"] += 1
        when = f" ({a.at})" if a.at else ""
        reason = None
        if report.chained == 0:
            reason = (f"the log is {'missing or empty' if report.entries == 0 else 'without any chained entry'}, "
                      f"but {a.source} shows it had {a.seq} entries{when}: it was deleted, emptied or replaced")
        elif a.seq > head_seq:
            reason = (f"the log ends at seq {head_seq}, but {a.source} recorded seq {a.seq}{when}: entries "
                      "were cut off its end")
        elif a.seq not in seen:
            reason = f"there is no entry seq {a.seq}, which {a.source} recorded{when}: the log was rewritten"
        elif seen[a.seq][0] != a.hash:
            reason = (f"entry seq {a.seq} is not the one {a.source} recorded{when}: the log was rewritten up to "
                      "there (hashes recomputed)")
        elif a.kid and _key_of(keyring, a.kid) is not None and not seen[a.seq][1]:
            reason = (f"entry seq {a.seq} was authenticated with key {a.kid} when {a.source} recorded it; "
                      "now it is not")
        if reason is None:
            report.anchors["ok"] += 1
            if report.anchors["newest"] is None:
                report.anchors["newest"] = {"source": a.source, "seq": a.seq}
        else:
            problem = {"line": None, "seq": a.seq, "at": a.at, "action": None, "anchor": a.source,
                       "reason": reason}
            report.problems.append(problem)
            if report.broken_at is None:
                report.broken_at = problem


def _problem(report: ChainReport, lineno: int, obj: dict, reason: str) -> None:
    p = {"line": lineno, "seq": obj.get("seq"), "at": obj.get("at"), "action": obj.get("action"),
         "reason": reason}
    report.problems.append(p)
    if report.broken_at is None:
        report.broken_at = p


def require_intact(log_or_report: "AuditLog | ChainReport", anchors: Iterable[Anchor] = ()) -> ChainReport:
    """The verification (of a log, or a report made already); raises ``IntegrityError`` (exit 5)
    carrying the report when broken."""
    report = log_or_report if isinstance(log_or_report, ChainReport) else log_or_report.verify(anchors)
    if not report.ok:
        b = report.broken_at or {}
        where = f"line {b.get('line')} (seq {b.get('seq')})" if b.get("line") else f"seq {b.get('seq')}"
        more = f" (and {len(report.problems) - 1} more problem(s))" if len(report.problems) > 1 else ""
        raise IntegrityError(f"the audit log's hash chain is broken at {where}: {b.get('reason')}{more}",
                             payload=report.to_json())
    return report


# ---------------------------------------------------------------- module-level helpers

def log_for(root: "Any") -> AuditLog:
    """The audit log of a backup root: ``Settings`` (the configured root and keys), a Store, the log
    itself, or a bare path / ``s3://`` URL (then without a key: entries are not authenticated)."""
    if isinstance(root, AuditLog):
        return root
    if hasattr(root, "audit_log"):  # a Store
        return root.audit_log()
    if hasattr(root, "backup_root") and hasattr(root, "key_file"):  # Settings
        from .context import open_store

        return open_store(root).audit_log()
    if str(root).startswith("s3://"):
        from .store import open_store

        return open_store(root).audit_log()
    return FileAuditLog(audit_path(root))


def record(root: "Any", *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
    """Append one entry to the audit log of ``root`` (see ``log_for``); ``outcome`` is started, ok, error
    or refused."""
    return log_for(root).record(user=user, action=action, outcome=outcome, **details)


@dataclass
class AuditFilter:
    action: str | None = None
    user: str | None = None
    outcome: str | None = None
    text: str | None = None

    def match(self, e: dict) -> bool:
        if self.action and e.get("action") != self.action:
            return False
        if self.user and e.get("user") != self.user:
            return False
        if self.outcome:
            outcome = "interrupted" if e.get("interrupted") else e.get("outcome")
            if outcome != self.outcome:
                return False
        if self.text and self.text.lower() not in json.dumps(e, ensure_ascii=False).lower():
            return False
        return True


def read(root: "Any", limit: int | None = 100, flt: AuditFilter | None = None) -> list[dict]:
    """Entries newest first, at most ``limit`` (None: all)."""
    return log_for(root).read(limit, flt)


def read_jsonl_newest_first(path: Path, limit: int | None = None,
                            match: Callable[[dict], bool] | None = None) -> list[dict]:
    """JSON objects of an append-only JSON-lines file, last first; a torn or foreign line is skipped."""
    if (limit is not None and limit <= 0) or not Path(path).is_file():
        return []
    out: list[dict] = []
    for raw in _lines_reversed(Path(path)):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict) and (match is None or match(entry)):
            out.append(entry)
            if limit is not None and len(out) >= limit:
                break
    return out


def now() -> str:
    return now_iso()


__all__ = ["AuditLog", "FileAuditLog", "BlobAuditLog", "PreconditionFailed", "AuditUnwritable", "AuditFilter", "ChainReport",
           "Anchor", "record", "read", "verify_chain", "require_intact", "check", "anchor_in", "meta_anchor",
           "manifest_anchors", "log_for", "audit_path", "read_jsonl_newest_first", "entry_hash", "entry_mac",
           "OUTCOMES", "HEAD_COLLECTION"]
