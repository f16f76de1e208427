"""The manifest: what a backup holds, where its data is, and how to check it.

``Manifest.parse`` is the only way a manifest is read (from a repository, from
an import archive) and ``Manifest.create`` the only way one is made; both
validate everything a reader relies on: the format version, the hash over the
manifest's own content, ids, object ids and file names (recomputed from
collection names, so a manifest can never point at ``../x``), counts, column
typing, and the index specs and collection options a restore would recreate
(``mongospec``). The JSON object is kept as it was read, so unknown keys of
later minor versions survive an export and import unchanged.

Format 3 names data by content: each collection lists its *parts* (a full
CSV, then, for an incremental backup, the changed documents and the deleted
``_id``s of each later backup), each a data object ``data/<id[:2]>/<id>``.
Formats 1 and 2 kept one file per collection in the backup's own folder (or,
deduplicated on an object store, a reference to another backup's folder);
they are still read: their single file becomes the collection's one part.
Field meanings: docs/FORMAT.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import codec, mongospec
from ..errors import CodecError, FormatError, IntegrityError, UsageError
from ..timeutil import parse_iso
from .layout import ID_RE, TRIGGERS, WEEKDAYS, file_name_for, view_name

# version of the backup format (manifest and layout); the CSV cells keep codec.FORMAT_VERSION
FORMAT_VERSION = 3
MAX_MANIFEST_BYTES = 16 << 20
# format 2: data files of an encrypted backup are named by a keyed hash of the collection name
ENCRYPTED_FILE_RE = re.compile(r"^[0-9a-f]{32}\.csv(\.gz)?\.enc$")
OBJECT_ID_RE = re.compile(r"^[0-9a-f]{64}\Z")
CIPHERS = ("AES-256-GCM",)
PART_KINDS = ("full", "changes", "deleted")


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_hash(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def object_name(object_id: str) -> str:
    """Where a data object lives in a repository."""
    return f"data/{object_id[:2]}/{object_id}"


def _decode_dialect(obj: Any, what: str) -> Any:
    from ..mongoutil import from_json_dialect  # the codec's JSON dialect -> Python objects

    try:
        return from_json_dialect(obj)
    except (CodecError, ValueError, TypeError) as exc:
        raise FormatError(f"{what} is not valid JSON-dialect data: {exc}") from None


def _int(entry: dict, key: str, what: str, default: int | None = None) -> int:
    value = entry.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or (value < 0 and default is None):
        raise FormatError(f"{what} lacks a valid {key!r}")
    return value


def _sha256(entry: dict, what: str) -> str:
    value = entry.get("sha256")
    if not isinstance(value, str) or not OBJECT_ID_RE.match(value):
        raise FormatError(f"{what} has an invalid sha256")
    return value


def _schema(entry: dict, what: str) -> codec.Schema:
    if not isinstance(entry.get("schema"), dict):
        raise FormatError(f"{what} lacks a valid 'schema'")
    try:
        return codec.Schema.from_json(entry["schema"])
    except CodecError as exc:
        raise FormatError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class Part:
    """One stored CSV of a collection: a full copy, or the changed documents or deleted ``_id``s of a step."""

    kind: str
    file: str  # its readable name (a backup's folder, an export archive)
    count: int  # its rows
    bytes: int  # the CSV file's size (gzip bytes when compressed), before any encryption
    sha256: str  # of those bytes
    compressed: bool
    schema: codec.Schema = field(repr=False)
    stored_bytes: int  # the stored object's size (the ciphertext's, when encrypted)
    plain_bytes: int  # the CSV text's size before compression (-1: not recorded)
    object: str | None  # format 3: the content id
    location: str  # the name the repository loads it from

    def to_json(self) -> dict:
        return {"kind": self.kind, "object": self.object, "file": self.file, "count": self.count,
                "bytes": self.bytes, "sha256": self.sha256, "compressed": self.compressed,
                "stored_bytes": self.stored_bytes, "plain_bytes": self.plain_bytes,
                "schema": self.schema.to_json()}

    @classmethod
    def from_json(cls, collection: str, part: Any, encrypted: bool, what: str) -> "Part":
        if not isinstance(part, dict):
            raise FormatError(f"{what} is not an object")
        kind = part.get("kind")
        if kind not in PART_KINDS:
            raise FormatError(f"{what} has an unknown kind {kind!r}")
        obj = part.get("object")
        if not isinstance(obj, str) or not OBJECT_ID_RE.match(obj):
            raise FormatError(f"{what} names an invalid object {obj!r}")
        compressed = part.get("compressed", False)
        if not isinstance(compressed, bool):
            raise FormatError(f"{what} has an invalid 'compressed'")
        expected = f"{obj}.enc" if encrypted else view_name(collection, kind, compressed)
        if part.get("file") != expected:
            # also refuses '../x', '/etc/passwd' and any other path
            raise FormatError(f"{what} names file {part.get('file')!r}; expected {expected!r}")
        size = _int(part, "bytes", what)
        stored = _int(part, "stored_bytes", what)
        if encrypted and stored <= size:
            raise FormatError(f"{what}: an encrypted object is larger than its plaintext")
        if not encrypted and stored != size:
            raise FormatError(f"{what}: stored_bytes differs from bytes in an unencrypted backup")
        sha = _sha256(part, what)
        if not encrypted and obj != sha:
            raise FormatError(f"{what}: an unencrypted object is named by its SHA-256")
        return cls(kind, expected, _int(part, "count", what), size, sha, compressed, _schema(part, what), stored,
                   _int(part, "plain_bytes", what, -1), obj, object_name(obj))


@dataclass(frozen=True)
class CollectionEntry:
    """One collection of a backup: its parts (one full copy, then increments), indexes and options."""

    name: str
    count: int  # documents of the collection in this backup
    parts: tuple[Part, ...] = field(repr=False)
    indexes: list = field(repr=False)  # JSON dialect, as stored
    options: dict = field(repr=False)  # JSON dialect, as stored
    doc_index: Part | None = field(default=None, repr=False)  # per-document hashes (incremental backups)
    reused_from: str | None = None  # format 2: the backup whose stored data this entry shares

    # ---- the collection's own part: what this backup wrote (or shares) as its file
    @property
    def own(self) -> Part:
        for p in reversed(self.parts):
            if p.kind != "deleted":
                return p
        return self.parts[0]

    @property
    def file(self) -> str:
        return self.own.file

    @property
    def bytes(self) -> int:
        return self.own.bytes

    @property
    def sha256(self) -> str:
        return self.own.sha256

    @property
    def compressed(self) -> bool:
        return self.own.compressed

    @property
    def schema(self) -> codec.Schema:
        return self.own.schema

    @property
    def stored_bytes(self) -> int:
        return self.own.stored_bytes

    @property
    def plain_bytes(self) -> int:
        return self.own.plain_bytes

    @property
    def object(self) -> str | None:
        return self.own.object

    @property
    def incremental(self) -> bool:
        return len(self.parts) > 1

    def own_parts(self) -> tuple[Part, ...]:
        """What this backup itself wrote for the collection: its full copy, or its last step's changes
        and deletions (the files its folder shows)."""
        return self.parts[-2:] if len(self.parts) > 1 else self.parts

    @property
    def logical_bytes(self) -> int:
        p = self.own
        return p.plain_bytes if p.plain_bytes >= 0 else p.bytes

    def stored_parts(self) -> tuple[Part, ...]:
        """Every object this entry needs (its parts and its document index)."""
        return self.parts + ((self.doc_index,) if self.doc_index is not None else ())

    def decoded_indexes(self) -> list[dict]:
        return [_decode_dialect(s, f"collection {self.name!r}: an index") for s in self.indexes]

    def decoded_options(self) -> dict:
        return _decode_dialect(self.options, f"collection {self.name!r}: options")

    def to_json(self) -> dict:
        own = self.own
        out = {"file": own.file, "count": self.count, "bytes": own.bytes, "sha256": own.sha256,
               "compressed": own.compressed, "indexes": self.indexes, "options": self.options,
               "parts": [p.to_json() for p in self.parts]}
        if self.doc_index is not None:
            d = self.doc_index
            out["doc_index"] = {"object": d.object, "count": d.count, "bytes": d.bytes, "sha256": d.sha256,
                                "stored_bytes": d.stored_bytes}
        return out

    # ---- reading
    @classmethod
    def parse(cls, name: str, entry: Any, *, version: int, encrypted: bool, location: str) -> "CollectionEntry":
        if not isinstance(entry, dict):
            raise FormatError(f"manifest entry for {name!r} is not an object")
        what = f"manifest entry for {name!r}"
        indexes, options = _indexes_and_options(name, entry)
        if version < 3:
            part, reused = _legacy_part(name, entry, encrypted, location)
            return cls(name, part.count, (part,), indexes, options, None, reused)
        parts_json = entry.get("parts")
        if not isinstance(parts_json, list) or not parts_json:
            raise FormatError(f"{what} lacks its 'parts'")
        parts = tuple(Part.from_json(name, p, encrypted, f"{what}, part {i + 1}") for i, p in enumerate(parts_json))
        shape = [p.kind for p in parts]
        if len(shape) % 2 == 0 or shape[0] != "full" or any(k != "changes" for k in shape[1::2]) or \
                any(k != "deleted" for k in shape[2::2]):
            raise FormatError(f"{what}: parts must be one full copy, then pairs of changes and deletions")
        doc_index = None
        if entry.get("doc_index") is not None:
            doc_index = _doc_index_part(name, entry["doc_index"], encrypted, what)
        count = _int(entry, "count", what)
        if len(parts) == 1 and parts[0].count != count:
            raise FormatError(f"{what}: count {count} differs from its file's {parts[0].count} rows")
        made = cls(name, count, parts, indexes, options, doc_index)
        own = made.own
        for key, value in (("file", own.file), ("bytes", own.bytes), ("sha256", own.sha256)):
            if entry.get(key) != value:
                raise FormatError(f"{what}: {key!r} does not match its own part")
        return made


def _doc_index_part(name: str, raw: Any, encrypted: bool, what: str) -> Part:
    if not isinstance(raw, dict):
        raise FormatError(f"{what}: invalid 'doc_index'")
    obj = raw.get("object")
    if not isinstance(obj, str) or not OBJECT_ID_RE.match(obj):
        raise FormatError(f"{what}: the document index names an invalid object")
    return Part("index", f"{obj}.idx", _int(raw, "count", what), _int(raw, "bytes", what), _sha256(raw, what),
                False, codec.Schema(), _int(raw, "stored_bytes", what), -1, obj, object_name(obj))


def _indexes_and_options(name: str, entry: dict) -> tuple[list, dict]:
    indexes = entry.get("indexes", [])
    options = entry.get("options", {})
    if not isinstance(indexes, list):
        raise FormatError(f"manifest entry for {name!r}: indexes must be a list")
    where = f"manifest, collection {name!r}"
    names = set()
    for spec in indexes:
        decoded = _decode_dialect(spec, f"{where}: an index")
        mongospec.check_index_spec(decoded, where)
        if decoded["name"] in names:
            raise FormatError(f"{where}: two indexes are named {decoded['name']!r}")
        names.add(decoded["name"])
    mongospec.check_collection_options(_decode_dialect(options, f"{where}: options"), where)
    return list(indexes), dict(options)


def _legacy_part(name: str, entry: dict, encrypted: bool, location: str) -> tuple[Part, str | None]:
    """The one file of a format 1 or 2 entry, as a part (``location``: the backup's own folder)."""
    what = f"manifest entry for {name!r}"
    compressed = entry.get("compressed", False)
    if not isinstance(compressed, bool):
        raise FormatError(f"{what} has an invalid 'compressed'")
    file = entry.get("file")
    if encrypted:
        suffix = ".csv.gz.enc" if compressed else ".csv.enc"
        if not isinstance(file, str) or not ENCRYPTED_FILE_RE.match(file) or not file.endswith(suffix):
            raise FormatError(f"manifest names file {file!r} for collection {name!r}; an encrypted "
                              f"backup's files are 32 hex digits and {suffix!r}")
        stored = _int(entry, "stored_bytes", what)
    else:
        expected = file_name_for(name, compressed)
        if file != expected:
            # also refuses '../x', '/etc/passwd' and any other path
            raise FormatError(f"manifest names file {file!r} for collection {name!r}; expected {expected!r}")
        stored = _int(entry, "bytes", what)
    size = _int(entry, "bytes", what)
    sha = _sha256(entry, what)
    schema = _schema(entry, what)
    reused = entry.get("reused_from")
    if reused is not None and (not isinstance(reused, str) or not ID_RE.match(reused)):
        raise FormatError(f"{what} has an invalid 'reused_from'")
    where = f"{location}/{file}"
    obj = entry.get("object")
    if obj is not None:
        parts = obj.split("/") if isinstance(obj, str) else []
        if len(parts) != 3 or parts[0] not in WEEKDAYS or not ID_RE.match(parts[1]) or \
                parts[2] != file or reused != parts[1]:
            # an object reference names exactly <weekday>/<backup id>/<this entry's file name>
            raise FormatError(f"{what} refers to an invalid object {obj!r}")
        where = obj
    part = Part("full", file, _int(entry, "count", what), size, sha, compressed, schema, stored,
                _int(entry, "plain_bytes", what, -1), None, where)
    return part, reused


@dataclass(frozen=True)
class Manifest:
    """A validated manifest and the exact bytes it was read from (or written as)."""

    data: dict = field(repr=False)
    raw: bytes = field(repr=False)
    collections: dict[str, CollectionEntry] = field(repr=False)

    # ---- reading
    @classmethod
    def parse(cls, raw: bytes, *, backup_id: str | None = None, location: str = "") -> "Manifest":
        """Parse and validate; raises FormatError/IntegrityError with the reason.

        ``location``: the backup's folder name in the repository (``<day>/<id>``), where format 1 and 2
        kept their files."""
        data = _load_checked(raw)
        version = data["format_version"]
        _check_header(data, backup_id)
        encryption = data.get("encryption")
        if encryption is not None:
            if version < 2 or not isinstance(encryption, dict) or encryption.get("cipher") not in CIPHERS \
                    or not isinstance(encryption.get("key_fingerprint"), str):
                raise FormatError("manifest has an invalid 'encryption'")
        location = location or f"{data.get('day_of_week') or ''}/{data['backup_id']}"
        entries = {}
        for name, entry in data["collections"].items():
            if not name or "\x00" in name or name.startswith("system.") or "$" in name:
                raise FormatError(f"manifest names a collection that cannot exist: {name!r}")
            entries[name] = CollectionEntry.parse(name, entry, version=version, encrypted=encryption is not None,
                                                  location=location)
        files = [e.file for e in entries.values()]
        # (an encrypted backup's files are named by content: two equal collections share one)
        if (version < 3 or encryption is None) and len(set(files)) != len(files):
            raise FormatError("manifest lists one file for two collections")
        absent = data.get("absent_collections", [])
        if not isinstance(absent, list) or not all(isinstance(n, str) and n for n in absent):
            raise FormatError("manifest absent_collections must be a list of collection names")
        if set(absent) & set(entries):
            raise FormatError("manifest lists a collection both as backed up and as absent")
        return cls(data, bytes(raw), entries)

    # ---- writing
    @classmethod
    def create(cls, body: dict) -> "Manifest":
        """Seal ``body`` (adds ``manifest_sha256``) and validate it exactly as a reader will."""
        data = dict(body)
        data["manifest_sha256"] = manifest_hash(data)
        # compact: a manifest is written with every backup, and most backups share all their data
        raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"
        return cls.parse(raw, backup_id=data.get("backup_id"))  # never write what could not be read back

    # ---- views
    @property
    def backup_id(self) -> str:
        return self.data["backup_id"]

    @property
    def format_version(self) -> int:
        return self.data["format_version"]

    @property
    def created_at(self) -> str:
        return self.data["created_at"]

    @property
    def created(self) -> datetime:
        return parse_iso(self.created_at)  # type: ignore[return-value]

    @property
    def database(self) -> str:
        return self.data["database"]

    @property
    def trigger(self) -> str:
        return self.data["trigger"]

    @property
    def user(self) -> str | None:
        return self.data.get("user")

    @property
    def day_of_week(self) -> str | None:
        return self.data.get("day_of_week")

    @property
    def restore_of(self) -> str | None:
        """Safety backups: the backup whose restore took this one (restoring it undoes that restore)."""
        return self.data.get("restore_of")

    @property
    def encryption(self) -> dict | None:
        return self.data.get("encryption")

    @property
    def key_fingerprint(self) -> str | None:
        return (self.encryption or {}).get("key_fingerprint")

    @property
    def absent_collections(self) -> list[str]:
        """Collections that did not exist when the backup was taken (safety backups record them,
        so restoring one also removes what the restore had created)."""
        return list(self.data.get("absent_collections") or [])

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def collection(self, name: str) -> CollectionEntry:
        try:
            return self.collections[name]
        except KeyError:
            raise UsageError(f"backup {self.backup_id} has no collection {name!r}; "
                             f"it has {', '.join(sorted(self.collections)) or 'none'}") from None

    def objects(self) -> set[str]:
        """Every repository name this backup's data lives at."""
        return {p.location for e in self.collections.values() for p in e.stored_parts()}


def _load_checked(raw: bytes) -> dict:
    if len(raw) > MAX_MANIFEST_BYTES:
        raise FormatError(f"manifest is larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormatError(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FormatError("manifest is not a JSON object")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise FormatError("manifest has no format_version")
    if version > FORMAT_VERSION:
        raise FormatError(f"backup uses format version {version}; this program reads up to "
                          f"version {FORMAT_VERSION}", hint="upgrade the backup tool")
    if version < 1:
        raise FormatError(f"unknown format version {version}")
    if data.get("manifest_sha256") != manifest_hash(data):
        raise IntegrityError("manifest does not match its recorded hash (edited or corrupted)")
    return data


def _check_header(data: dict, backup_id: str | None) -> None:
    for key in ("backup_id", "created_at", "database", "trigger", "collections"):
        if key not in data:
            raise FormatError(f"manifest lacks {key!r}")
    if not isinstance(data["backup_id"], str) or not ID_RE.match(data["backup_id"]):
        raise FormatError(f"manifest has an invalid backup_id {data['backup_id']!r}")
    if backup_id is not None and data["backup_id"] != backup_id:
        raise FormatError(f"manifest names backup {data['backup_id']} but lives in folder {backup_id}")
    if parse_iso(data["created_at"]) is None:
        raise FormatError(f"manifest has an invalid created_at {data['created_at']!r}")
    if not isinstance(data["database"], str):
        raise FormatError("manifest has an invalid database name")
    if data["trigger"] not in TRIGGERS:
        raise FormatError(f"manifest has an unknown trigger {data['trigger']!r}")
    if data.get("day_of_week") is not None and data["day_of_week"] not in WEEKDAYS:
        raise FormatError(f"manifest has an invalid day_of_week {data['day_of_week']!r}")
    if not isinstance(data["collections"], dict):
        raise FormatError("manifest collections must be an object")
    restore_of = data.get("restore_of")
    if restore_of is not None and (not isinstance(restore_of, str) or not ID_RE.match(restore_of)):
        raise FormatError(f"manifest has an invalid restore_of {restore_of!r}")
