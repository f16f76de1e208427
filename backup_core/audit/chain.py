"""The audit log's hash chain and its verification: pure functions of the lines, no storage.

The chain. Every entry carries ``seq`` (1, 2, 3, ...), ``prev`` (the
``hash`` of the entry before it) and ``hash`` (SHA-256 of the entry's
canonical JSON without ``hash`` and ``mac``), so editing, inserting or
removing an entry anywhere breaks the chain at that point. A line that is
not a chained entry (torn by a crash, or written by an older version) is
linked by the SHA-256 of its raw bytes.

Authentication. When the store's keyring has a current key
(``BACKUP_KEY_FILE``), every entry also carries ``kid`` (the key's
fingerprint, inside the hash) and ``mac``: HMAC-SHA256 of its ``hash`` under
a key derived from the backup key with HKDF-SHA256 (info ``backup_core audit
log v1``). Whoever lacks the key can neither recompute a ``mac`` after an
edit nor append an entry that verifies; once an authenticated entry exists,
a later entry without a ``mac`` is reported (verified with the key).

Verification. ``verify_lines`` walks every line, oldest first (links,
sequence, authentication), then holds the log against its ``Anchor``s: heads
recorded outside the log, which show entries cut off its end and a log
rewritten from the start. What it finds is a ``ChainReport``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Iterable

GENESIS = "0" * 64
_MAC_INFO = b"backup_core audit log v1"
# at most this many problems are spelled out in the text report (all are in the JSON)
_SHOWN_PROBLEMS = 8


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


def link_of(raw: bytes) -> tuple[str, int]:
    """(the ``prev`` an entry after this line must carry, the ``seq`` that line had or 0)."""
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if _is_chained(obj):
        return obj["hash"], obj["seq"]
    return hashlib.sha256(raw).hexdigest(), 0


def parse_chained(raw: bytes | None) -> dict | None:
    """The chained entry on line ``raw``, or None (no line, not JSON, or an entry without chain fields)."""
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


def head_of(entry: dict) -> dict:
    """An entry's place in its chain, as anchors record it: ``seq``, ``hash``, ``at`` (and ``kid``)."""
    head = {"seq": entry.get("seq"), "hash": entry.get("hash"), "at": entry.get("at")}
    if entry.get("kid"):
        head["kid"] = entry["kid"]
    return head


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


# ---------------------------------------------------------------- verification

def verify_lines(lines: Iterable[bytes], where: str, keyring=None, anchors: list[Anchor] | None = None,
                 chain: str | None = None) -> ChainReport:
    """Walk every line, oldest first: links, sequence, authentication; then every anchor."""
    report = ChainReport(where)
    mine = [a for a in anchors or () if a.applies_to(where, chain)]
    report.anchors["other_logs"] = len(anchors or ()) - len(mine)
    walk = _Walk(report, keyring, wanted={a.seq for a in mine})
    for lineno, raw in enumerate(lines, 1):
        if raw.strip():
            walk.line(lineno, raw)
    walk.finish()
    _check_anchors(report, mine, walk.seen, keyring)
    return report


class _Walk:
    """One pass over a log's lines, oldest first, noting what breaks in ``report``."""

    def __init__(self, report: ChainReport, keyring, wanted: set[int]) -> None:
        self.report, self.keyring, self.wanted = report, keyring, wanted
        self.seen: dict[int, tuple[str, bool]] = {}  # anchored seq -> (hash, mac verified)
        self.prev, self.expected_seq, self.started = GENESIS, None, False
        self.first_authenticated: int | None = None
        self.unauthenticated_after = 0
        self.other_keys: set[str] = set()
        self.can_check = bool(getattr(keyring, "keys", ()))

    def line(self, lineno: int, raw: bytes) -> None:
        self.report.entries += 1
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if _is_chained(obj):
            self._chained(lineno, obj)
        else:
            self._unchained(lineno, raw, obj)

    def _unchained(self, lineno: int, raw: bytes, obj: Any) -> None:
        if self.started and isinstance(obj, dict):
            _problem(self.report, lineno, obj, "an entry without a hash after the chain began "
                                               "(inserted by hand, or its chain fields were stripped)")
        elif obj is None:
            self.report.warnings.append(f"line {lineno} is not a complete entry (torn by a crash?)")
        else:
            self.report.legacy += 1
        self.prev = hashlib.sha256(raw).hexdigest()

    def _chained(self, lineno: int, obj: dict) -> None:
        report = self.report
        self.started = True
        report.chained += 1
        if obj["prev"] != self.prev:
            _problem(report, lineno, obj, "does not follow the line before it: an entry before it "
                                          "was removed, inserted or changed")
        elif entry_hash(obj) != obj["hash"]:
            _problem(report, lineno, obj, "its content does not match its hash: the entry was edited")
        elif self.expected_seq is not None and obj["seq"] != self.expected_seq:
            _problem(report, lineno, obj, f"sequence number {obj['seq']}, expected {self.expected_seq}: "
                                          "entries were removed or reordered")
        verified = _check_mac(report, lineno, obj, self.keyring, self.other_keys)
        self._authenticated_since(lineno, obj)
        if obj["seq"] in self.wanted:
            self.seen[obj["seq"]] = (obj["hash"], verified)
        self.prev, self.expected_seq = obj["hash"], obj["seq"] + 1
        report.head = head_of(obj)

    def _authenticated_since(self, lineno: int, obj: dict) -> None:
        """Once an entry is authenticated, every later one must be."""
        if "mac" in obj or "kid" in obj:
            if self.first_authenticated is None:
                self.first_authenticated = obj["seq"]
        elif self.first_authenticated is not None:
            if self.can_check:
                _problem(self.report, lineno, obj, f"not authenticated, although the entries from seq "
                                                   f"{self.first_authenticated} on are: appended by someone "
                                                   "without the key (forged), or by a process without "
                                                   "BACKUP_KEY_FILE")
            else:
                self.unauthenticated_after += 1

    def finish(self) -> None:
        report = self.report
        if self.other_keys:
            report.warnings.append(f"{report.unchecked} entries are authenticated with key(s) "
                                   f"{', '.join(sorted(self.other_keys))}, which is not configured: their macs "
                                   "were not checked (set BACKUP_KEY_FILE or BACKUP_KEY_FILES to check them)")
        if self.unauthenticated_after:
            report.warnings.append(f"{self.unauthenticated_after} entries after the first authenticated one are "
                                   "not authenticated; configure the key to judge them")


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
