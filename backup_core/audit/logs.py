"""Where the audit log's lines are kept, and how they are appended and read back.

Where: one JSON object per line in ``<root>/.audit/audit.jsonl`` for a local
backup root (``FileAuditLog``, created owner-only: the folder 0700, the file
0600); one small object per entry under ``<prefix>/.audit/entries/`` for an
object store (``BlobAuditLog``). Both are an ``AuditLog``: ``append`` chains
an entry to the one before it (``chain.py``) and moves its anchors in the
metadata database forward (``heads.py``); ``read`` gives entries newest first.

Writing. Local entries are appended under a ``filelock`` (threads and
processes), each with one ``write`` on an ``O_APPEND`` descriptor followed by
``fsync``. A line torn by a crash is kept as it is: the next entry's ``prev``
is the SHA-256 of its raw bytes, so the chain runs through it and only a real
edit breaks it.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from filelock import FileLock

from ..config import mask_uri
from ..errors import StorageError
from ..fsutil import FULL_ERRNOS, READ_ONLY_ERRNOS, os_error_text
from ..locks import process_alive
from ..timeutil import now_iso
from .chain import GENESIS, Anchor, ChainReport, entry_hash, entry_mac, head_of, link_of, parse_chained, verify_lines
from .heads import publish

AUDIT_DIR = ".audit"
AUDIT_FILE = "audit.jsonl"
_CHAIN_KEYS = ("seq", "prev", "hash", "kid", "mac")


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


@dataclass
class AuditFilter:
    """Which entries ``read`` keeps: those that match every field given (``text``: anywhere in the entry)."""

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


class AuditLog:
    """An append-only, hash-chained audit log (see ``backup_core.audit``). Subclasses store the lines."""

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
            prev, seq = link_of(last) if last is not None else (GENESIS, 0)
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
        publish(self, head_of(written))
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

    def read(self, limit: int | None = 100, flt: AuditFilter | None = None) -> list[dict]:
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
            obj = parse_chained(raw)
            if obj is not None:
                return {"log": self.where, "chain": self.chain_id(), **head_of(obj)}
        return None

    def chain_id(self) -> str | None:
        """The ``hash`` of the first chained entry: names this chain wherever the log is moved."""
        if self._chain is None:
            for raw in self.lines():
                obj = parse_chained(raw)
                if obj is not None:
                    self._chain = obj["hash"]
                    break
        return self._chain

    def verify(self, anchors: Iterable[Anchor] = ()) -> ChainReport:
        return verify_lines(self.lines(), self.where, self.keyring, list(anchors), self.chain_id())


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
                _, seq = link_of(lines[-1])
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
                seen = parse_chained(data.rstrip(b"\n")) if data is not None else None
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
        obj = parse_chained(last) if last is not None else None
        if obj is None:
            return super().head()  # an older log without chained entries at its end
        return {"log": self.where, "chain": self.chain_id(), **head_of(obj)}

    def chain_id(self) -> str | None:
        if self._chain is None:
            with _blob_guard:
                self._chain = _blob_chains.get(self.where)
        if self._chain is None:
            segments, entries = self._names()
            first = [ln for name in segments[:1] for ln in self._segment_lines(name)[:1]] or \
                [(self._get(name) or b"").rstrip(b"\n") for name in entries[:1]]
            obj = parse_chained(first[0]) if first else None
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
