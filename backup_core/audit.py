"""The audit log: append-only, hash-chained, kept outside the backed-up database.

One JSON object per line in ``<root>/.audit/audit.jsonl`` (for a local backup
root). Every entry carries ``seq`` (1, 2, 3, ...), ``prev`` (the ``hash`` of the
line before it) and ``hash`` (SHA-256 of the entry's canonical JSON without
``hash``), so editing, inserting or removing an entry anywhere breaks the
chain at that point; ``verify_chain`` finds it (``python -m backup_core audit
--verify``). Removing entries at the very end cannot be seen from the file
alone: compare the head (``seq`` and ``hash``) with an earlier reading.

Entries are appended under a ``filelock`` (threads and processes), each with
one ``write`` on an ``O_APPEND`` descriptor followed by ``fsync``. A line torn
by a crash is kept as it is: the next entry's ``prev`` is the SHA-256 of its
raw bytes, so the chain runs through it and only a real edit breaks it.

Operations (``operation.py``) write two entries: ``outcome: "started"`` before
they change anything and their outcome (``ok``, ``error``, ``refused``) after,
linked by ``op``; an operation killed in between shows as started without an
outcome (``read`` marks it ``interrupted`` once its process is gone).
Instant events (login, logout, set-password) are one entry each.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from filelock import FileLock

from .config import mask_uri
from .errors import IntegrityError, StorageError
from .locks import process_alive
from .timeutil import now_iso

AUDIT_DIR = ".audit"
AUDIT_FILE = "audit.jsonl"
GENESIS = "0" * 64
OUTCOMES = ("started", "ok", "error", "refused")
_CHAIN_KEYS = ("seq", "prev", "hash")


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
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(_canonical(entry)).hexdigest()


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


class AuditLog:
    """An append-only, hash-chained audit log (see the module docstring). Subclasses store the lines."""

    where = ""

    def _append_line(self, build) -> dict:
        """Append ``build(prev_line)`` (the entry for a log whose last line is ``prev_line``) atomically."""
        raise NotImplementedError

    def lines(self) -> Iterator[bytes]:
        """Every line, oldest first."""
        raise NotImplementedError

    def lines_newest_first(self) -> Iterator[bytes]:
        raise NotImplementedError

    # ---- writing
    def append(self, entry: dict) -> dict:
        """Add ``seq``, ``prev`` and ``hash`` to ``entry`` and append it durably; returns it."""
        entry = json.loads(json.dumps(_scrub(entry), default=str, ensure_ascii=False))
        for k in _CHAIN_KEYS:
            entry.pop(k, None)

        def build(last: bytes | None, lines_before: int) -> tuple[dict, bytes]:
            prev, seq = _link_of(last) if last is not None else (GENESIS, 0)
            if seq == 0 and last is not None:
                seq = lines_before  # after unchained lines, continue their numbering
            chained = dict(entry, seq=seq + 1, prev=prev)
            chained["hash"] = entry_hash(chained)
            return chained, json.dumps(chained, ensure_ascii=False).encode("utf-8") + b"\n"

        return self._append_line(build)

    def record(self, *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
        entry = {"at": now_iso(), "user": user, "action": action, "outcome": outcome}
        entry.update({k: v for k, v in details.items() if v is not None})
        return self.append(entry)

    # ---- reading
    def read(self, limit: int | None = 100, flt: "AuditFilter | None" = None) -> list[dict]:
        """Entries newest first, at most ``limit`` (None: all); unreadable lines are skipped.

        A ``started`` entry whose operation has no outcome yet gets
        ``"unfinished": true`` and, when its process is gone, ``"interrupted": true``.
        """
        if limit is not None and limit <= 0:
            return []
        finished: set[str] = set()
        out: list[dict] = []
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
            if flt is None or flt.match(entry):
                out.append(entry)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def verify(self) -> "ChainReport":
        return verify_lines(self.lines(), self.where)


class FileAuditLog(AuditLog):
    """The audit log as one local file, appended under a ``filelock``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def _lock(self) -> FileLock:
        return FileLock(str(self.path.with_name(self.path.name + ".lock")), is_singleton=True,
                        thread_local=True)

    def _append_line(self, build) -> dict:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock():
                fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    last, torn = _last_line(fd)
                    entry, line = build(last, _count_lines(fd) if last is not None else 0)
                    os.write(fd, (b"\n" if torn else b"") + line)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write the audit log {self.path}: {exc.strerror or exc}") from None
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


class PreconditionFailed(Exception):
    """A conditional write lost a race (the object changed, or exists already)."""


class BlobAuditLog(AuditLog):
    """The audit log in an object store without append: numbered segment objects of JSON lines.

    Appending re-writes the newest segment with a conditional write (``If-Match``
    its current version, ``If-None-Match`` for a new one), so concurrent writers
    on several hosts never lose an entry and the chain stays one chain; a
    writer that loses the race reads the segment again and retries.
    """

    SEGMENT_BYTES = 1 << 20
    RETRIES = 200

    def __init__(self, blobs, prefix: str, where: str) -> None:
        self.blobs, self.prefix, self.where = blobs, prefix, where

    def _segments(self) -> list[str]:
        return sorted(n for n in self.blobs.list(self.prefix) if n.rsplit("/", 1)[-1].startswith("segment-"))

    def _name(self, number: int) -> str:
        return f"{self.prefix}segment-{number:08d}.jsonl"

    def _append_line(self, build) -> dict:
        import random
        import time

        for _ in range(self.RETRIES):
            segments = self._segments()
            number = int(segments[-1].rsplit("-", 1)[-1].split(".")[0]) if segments else 1
            got = self.blobs.get(segments[-1]) if segments else None
            data, etag = got if got is not None else (b"", None)
            last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1] if data.strip() else None
            entry, line = build(last, data.count(b"\n"))
            if got is not None and len(data) >= self.SEGMENT_BYTES:
                name, body, cond = self._name(number + 1), line, {"if_none_match": True}
            else:
                name = self._name(number)
                body = data + (b"\n" if data and not data.endswith(b"\n") else b"") + line
                cond = {"if_match": etag} if etag else {"if_none_match": True}
            try:
                self.blobs.put(name, body, **cond)
                return entry
            except PreconditionFailed:
                time.sleep(random.uniform(0.01, 0.1))
        raise StorageError(f"cannot write the audit log {self.where}: too many concurrent writers")

    def lines(self) -> Iterator[bytes]:
        for name in self._segments():
            got = self.blobs.get(name)
            if got is not None:
                yield from (ln for ln in got[0].split(b"\n") if ln.strip())

    def lines_newest_first(self) -> Iterator[bytes]:
        for name in reversed(self._segments()):
            got = self.blobs.get(name)
            if got is not None:
                yield from reversed([ln for ln in got[0].split(b"\n") if ln.strip()])


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


# ---------------------------------------------------------------- verification

@dataclass
class ChainReport:
    """What ``verify_chain`` found: ``ok`` unless an entry was edited, inserted or removed."""

    path: str
    entries: int = 0
    chained: int = 0
    legacy: int = 0
    head: dict | None = None
    broken_at: dict | None = None
    problems: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"ok": self.ok, "path": self.path, "entries": self.entries, "chained": self.chained,
                "legacy": self.legacy, "head": self.head, "broken_at": self.broken_at,
                "problems": self.problems, "warnings": self.warnings}

    def to_text(self) -> str:
        head = self.head or {}
        lines = [f"audit log {self.path}: {'chain OK' if self.ok else 'CHAIN BROKEN'} "
                 f"({self.entries} entries, {self.chained} chained"
                 + (f", {self.legacy} older unchained" if self.legacy else "") + ")"]
        if head:
            lines.append(f"  head: seq {head.get('seq')}, hash {head.get('hash')}")
        for p in self.problems:
            lines.append(f"  broken at line {p['line']} (seq {p.get('seq', '?')}, {p.get('at') or 'no time'}): "
                         f"{p['reason']}")
        lines += [f"  note: {w}" for w in self.warnings]
        return "\n".join(lines)


def verify_chain(path: Path | str) -> ChainReport:
    """Check every link of a local audit file (see the module docstring)."""
    return FileAuditLog(path).verify()


def verify_lines(lines: Iterable[bytes], where: str) -> ChainReport:
    """Walk every line, oldest first, and check every link."""
    report = ChainReport(where)
    prev, expected_seq, started = GENESIS, None, False
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
                                              "(inserted by hand?)")
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
        prev, expected_seq = obj["hash"], obj["seq"] + 1
        report.head = {"seq": obj["seq"], "hash": obj["hash"], "at": obj.get("at")}
    return report


def _problem(report: ChainReport, lineno: int, obj: dict, reason: str) -> None:
    p = {"line": lineno, "seq": obj.get("seq"), "at": obj.get("at"), "action": obj.get("action"),
         "reason": reason}
    report.problems.append(p)
    if report.broken_at is None:
        report.broken_at = p


def require_intact(log: AuditLog) -> ChainReport:
    """``verify_chain`` that raises ``IntegrityError`` (exit 5) carrying the report when broken."""
    report = log.verify()
    if not report.ok:
        b = report.broken_at or {}
        raise IntegrityError(f"the audit log's hash chain is broken at line {b.get('line')} "
                             f"(seq {b.get('seq')}): {b.get('reason')}", payload=report.to_json())
    return report


# ---------------------------------------------------------------- module-level helpers

def log_for(root: "Path | str | AuditLog") -> AuditLog:
    """The audit log of a backup root (a path, an ``s3://`` URL, a Store) or the log itself."""
    if isinstance(root, AuditLog):
        return root
    if hasattr(root, "audit_log"):  # a Store
        return root.audit_log()
    if str(root).startswith("s3://"):
        from .store import open_store

        return open_store(root).audit_log()
    return FileAuditLog(audit_path(root))


def record(root: "Path | str | AuditLog", *, user: str, action: str, outcome: str = "ok", **details: Any) -> dict:
    """Append one entry to the audit log of ``root``; ``outcome`` is started, ok, error or refused."""
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


def read(root: "Path | str | AuditLog", limit: int | None = 100, flt: AuditFilter | None = None) -> list[dict]:
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


__all__ = ["AuditLog", "FileAuditLog", "BlobAuditLog", "PreconditionFailed", "AuditFilter", "ChainReport", "record", "read", "verify_chain", "require_intact",
           "log_for", "audit_path", "read_jsonl_newest_first", "entry_hash", "OUTCOMES"]
