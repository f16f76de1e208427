"""The manifest: what a backup holds, how to read it, and how to check it.

``Manifest.parse`` is the only way a manifest is read (from a store, from an
import archive) and ``Manifest.create`` the only way one is made; both
validate everything a reader relies on: the format version, the hash over the
manifest's own content, ids, file names (recomputed from collection names, so
a manifest can never point at ``../x``), counts, column typing, and the index
specs and collection options a restore would recreate (``mongospec``). The
JSON object is kept as it was read, so unknown keys of later minor versions
survive an export and import unchanged. Field meanings: docs/FORMAT.md.
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
from .layout import ID_RE, TRIGGERS, WEEKDAYS, file_name_for

# version of the backup format (manifest and layout); the CSV cells keep codec.FORMAT_VERSION
FORMAT_VERSION = 2
MAX_MANIFEST_BYTES = 16 << 20
# data files of an encrypted backup are named by a keyed hash of the collection name
ENCRYPTED_FILE_RE = re.compile(r"^[0-9a-f]{32}\.csv(\.gz)?\.enc$")
CIPHERS = ("AES-256-GCM",)


def canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_hash(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _decode_dialect(obj: Any, what: str) -> Any:
    from ..mongoutil import from_json_dialect  # the codec's JSON dialect -> Python objects

    try:
        return from_json_dialect(obj)
    except (CodecError, ValueError, TypeError) as exc:
        raise FormatError(f"{what} is not valid JSON-dialect data: {exc}") from None


@dataclass(frozen=True)
class CollectionEntry:
    """One collection of a backup: its file, counts, hash, column typing, indexes and options."""

    name: str
    file: str
    count: int
    bytes: int
    sha256: str
    compressed: bool
    schema: codec.Schema = field(repr=False)
    indexes: list = field(repr=False)  # JSON dialect, as stored
    options: dict = field(repr=False)  # JSON dialect, as stored

    # the size of the stored (encrypted) object; equals ``bytes`` for an unencrypted backup
    stored_bytes: int = -1
    plain_bytes: int = -1  # the CSV text's size before compression (-1: not recorded)
    reused_from: str | None = None  # the backup whose stored data this entry shares (deduplicated)
    object: str | None = None  # object stores: where the data is stored, when not under this backup

    @property
    def logical_bytes(self) -> int:
        return self.plain_bytes if self.plain_bytes >= 0 else self.bytes

    @classmethod
    def from_json(cls, name: str, entry: Any, encrypted: bool = False) -> "CollectionEntry":
        if not isinstance(entry, dict):
            raise FormatError(f"manifest entry for {name!r} is not an object")
        compressed = entry.get("compressed", False)
        if not isinstance(compressed, bool):
            raise FormatError(f"manifest entry for {name!r} has an invalid 'compressed'")
        file = entry.get("file")
        if encrypted:
            suffix = ".csv.gz.enc" if compressed else ".csv.enc"
            if not isinstance(file, str) or not ENCRYPTED_FILE_RE.match(file) or not file.endswith(suffix):
                raise FormatError(f"manifest names file {file!r} for collection {name!r}; an encrypted "
                                  f"backup's files are 32 hex digits and {suffix!r}")
            stored = entry.get("stored_bytes")
            if not isinstance(stored, int) or isinstance(stored, bool) or stored < 0:
                raise FormatError(f"manifest entry for {name!r} lacks a valid 'stored_bytes'")
        else:
            expected = file_name_for(name, compressed)
            if file != expected:
                # also refuses '../x', '/etc/passwd' and any other path
                raise FormatError(f"manifest names file {file!r} for collection {name!r}; "
                                  f"expected {expected!r}")
        for key, kind in (("count", int), ("bytes", int), ("sha256", str), ("schema", dict)):
            value = entry.get(key)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise FormatError(f"manifest entry for {name!r} lacks a valid {key!r}")
        if entry["count"] < 0 or entry["bytes"] < 0:
            raise FormatError(f"manifest entry for {name!r} has a negative count or size")
        if len(entry["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in entry["sha256"]):
            raise FormatError(f"manifest entry for {name!r} has an invalid sha256")
        try:
            schema = codec.Schema.from_json(entry["schema"])
        except CodecError as exc:
            raise FormatError(f"manifest entry for {name!r}: {exc}") from None
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
        plain = entry.get("plain_bytes", -1)
        if not isinstance(plain, int) or isinstance(plain, bool):
            raise FormatError(f"manifest entry for {name!r} has an invalid 'plain_bytes'")
        reused = entry.get("reused_from")
        if reused is not None and (not isinstance(reused, str) or not ID_RE.match(reused)):
            raise FormatError(f"manifest entry for {name!r} has an invalid 'reused_from'")
        obj = entry.get("object")
        if obj is not None:
            parts = obj.split("/") if isinstance(obj, str) else []
            if len(parts) != 3 or parts[0] not in WEEKDAYS or not ID_RE.match(parts[1]) or \
                    parts[2] != file or reused != parts[1]:
                # an object reference names exactly <weekday>/<backup id>/<this entry's file name>
                raise FormatError(f"manifest entry for {name!r} refers to an invalid object {obj!r}")
        return cls(name, entry["file"], entry["count"], entry["bytes"], entry["sha256"], compressed, schema,
                   list(indexes), dict(options), entry["stored_bytes"] if encrypted else entry["bytes"],
                   plain, reused, obj)

    def decoded_indexes(self) -> list[dict]:
        return [_decode_dialect(s, f"collection {self.name!r}: an index") for s in self.indexes]

    def decoded_options(self) -> dict:
        return _decode_dialect(self.options, f"collection {self.name!r}: options")

    def to_json(self) -> dict:
        return {"file": self.file, "count": self.count, "bytes": self.bytes, "sha256": self.sha256,
                "compressed": self.compressed, "schema": self.schema.to_json(), "indexes": self.indexes,
                "options": self.options, "stored_bytes": self.stored_bytes, "plain_bytes": self.plain_bytes,
                "reused_from": self.reused_from, "object": self.object}


@dataclass(frozen=True)
class Manifest:
    """A validated manifest and the exact bytes it was read from (or written as)."""

    data: dict = field(repr=False)
    raw: bytes = field(repr=False)
    collections: dict[str, CollectionEntry] = field(repr=False)

    # ---- reading
    @classmethod
    def parse(cls, raw: bytes, *, backup_id: str | None = None) -> "Manifest":
        """Parse and validate; raises FormatError/IntegrityError with the reason."""
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
        encryption = data.get("encryption")
        if encryption is not None:
            if version < 2 or not isinstance(encryption, dict) or encryption.get("cipher") not in CIPHERS \
                    or not isinstance(encryption.get("key_fingerprint"), str):
                raise FormatError("manifest has an invalid 'encryption'")
        entries = {}
        for name, entry in data["collections"].items():
            if not name or "\x00" in name or name.startswith("system.") or "$" in name:
                raise FormatError(f"manifest names a collection that cannot exist: {name!r}")
            entries[name] = CollectionEntry.from_json(name, entry, encrypted=encryption is not None)
        files = [e.file for e in entries.values()]
        if len(set(files)) != len(files):
            raise FormatError("manifest lists one file for two collections")
        restore_of = data.get("restore_of")
        if restore_of is not None and (not isinstance(restore_of, str) or not ID_RE.match(restore_of)):
            raise FormatError(f"manifest has an invalid restore_of {restore_of!r}")
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
        raw = json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
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
