"""Export/import of backups as zip files: byte-identical round trips, and every hostile archive refused."""

from __future__ import annotations

import hashlib
import io
import json
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import pytest

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupNotFound, FormatError, IntegrityError, UsageError
from backup_core.store import MANIFEST, WEEKDAYS, LocalStore, manifest_hash
from backup_core.transfer import ArchiveRefused, default_max_bytes, export_backup, import_backup


@pytest.fixture(scope="module")
def source(client, tmp_path_factory):
    """One real backup (plain and compressed) exported once; tests get copies of the zip bytes."""
    name = f"t_transfer_{id(tmp_path_factory) % 100000}"
    db = client[name]
    db.Equipment.insert_many([{"_id": i, "asset_id": f"EQ-{i:03d}", "price": i * 1.5,
                               "tags": ["a", {"b": i}], "note": "=SUM(A1)" if i == 3 else None}
                              for i in range(25)])
    db.Equipment_select_options.insert_many([{"_id": i, "value": f"v{i}"} for i in range(5)])
    store = LocalStore(tmp_path_factory.mktemp("src") / "backups")
    plain = create_backup(db, store, BackupOptions(user="t"))
    packed = create_backup(db, store, BackupOptions(user="t", compress=True))
    client.drop_database(name)
    buf = io.BytesIO()
    export_backup(store, plain.backup_id, buf, user="t")
    return {"store": store, "id": plain.backup_id, "gz_id": packed.backup_id, "zip": buf.getvalue()}


@pytest.fixture
def dest(tmp_path):
    return LocalStore(tmp_path / "other")


def _entries(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i, zf.read(i)) for i in zf.infolist()]


def _build(entries) -> bytes:
    """A zip from (name or ZipInfo, bytes) pairs; duplicates allowed on purpose."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on duplicate names
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for info, data in entries:
                zf.writestr(info, data)
    return buf.getvalue()


def _edit(data: bytes, fn) -> bytes:
    """Rebuild the zip with ``fn(name, bytes) -> bytes | None`` applied (None drops the entry)."""
    out = []
    for info, body in _entries(data):
        new = fn(info.filename.split("/", 1)[1], body)
        if new is not None:
            out.append((info.filename, new))
    return _build(out)


def _forge_manifest(data: bytes, change) -> bytes:
    """Change the manifest and recompute its hash, as a careful forger would."""
    def fn(name, body):
        if name == MANIFEST:
            m = json.loads(body)
            change(m)
            m["manifest_sha256"] = manifest_hash(m)
            return json.dumps(m, indent=2).encode()
        return body
    return _edit(data, fn)


def _assert_nothing_listed(store: LocalStore) -> None:
    assert store.list_backups() == []
    leftovers = [p for d in WEEKDAYS if (store.root / d).is_dir() for p in (store.root / d).iterdir()]
    assert leftovers == []


def _tree(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()}


# ---------------------------------------------------------------- round trips

def test_round_trip_into_a_second_root_is_byte_identical(source, dest, tmp_path):
    src = source["store"]
    out = tmp_path / "exp" / "b.zip"
    out.parent.mkdir()
    res = export_backup(src, source["id"], out, user="alice")
    assert res.to_json()["backup_id"] == source["id"] and res.path == str(out)
    assert res.bytes == out.stat().st_size and res.files[0] == MANIFEST
    assert [p.name for p in out.parent.iterdir()] == ["b.zip"]  # no temp file left
    names = [i.filename for i in zipfile.ZipFile(out).infolist()]
    assert names == [f"{source['id']}/{MANIFEST}", f"{source['id']}/Equipment.csv",
                     f"{source['id']}/Equipment.index",  # each full copy's document index (incremental backups)
                     f"{source['id']}/Equipment_select_options.csv", f"{source['id']}/Equipment_select_options.index"]

    imp = import_backup(dest, out, user="bob")
    original = src.get(source["id"])
    assert imp.backup_id == source["id"] and not imp.already_present
    assert imp.path == str(dest.root / original.day / source["id"])
    assert imp.to_json()["collections"]["Equipment"]["count"] == 25
    assert [b.backup_id for b in dest.list_backups()] == [source["id"]]
    assert dest.verify(source["id"]).ok
    assert imp.path == dest.location(original.day, source["id"])
    assert _tree(Path(imp.path)) == _tree(src.folder(source["id"]))
    exp_entry, exp_started = audit.read(src.root, limit=2)
    assert (exp_entry["action"], exp_entry["outcome"], exp_entry["user"]) == ("export", "ok", "alice")
    assert (exp_started["action"], exp_started["outcome"], exp_started["op"]) == ("export", "started", exp_entry["op"])
    imp_entry, imp_started = audit.read(dest.root, limit=2)
    assert (imp_entry["action"], imp_entry["outcome"], imp_entry["backup_id"]) == ("import", "ok", source["id"])
    assert (imp_started["action"], imp_started["outcome"], imp_started["user"], imp_started["op"]) == \
        ("import", "started", "bob", imp_entry["op"])


def test_compressed_backup_round_trip_from_a_stream(source, dest):
    buf = io.BytesIO()
    export_backup(source["store"], source["gz_id"], buf)
    infos = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(buf.getvalue())).infolist()}
    gz = infos[f"{source['gz_id']}/Equipment.csv.gz"]
    assert gz.compress_type == zipfile.ZIP_STORED  # gzip data is not deflated twice
    buf.seek(0)
    imp = import_backup(dest, buf)
    assert dest.verify(imp.backup_id).ok
    assert _tree(Path(imp.path)) == _tree(source["store"].folder(source["gz_id"]))


def test_export_is_deterministic(source, tmp_path):
    a, b = io.BytesIO(), io.BytesIO()
    export_backup(source["store"], source["id"], a)
    export_backup(source["store"], source["id"], b)
    assert a.getvalue() == b.getvalue() == source["zip"]


def test_import_from_an_unseekable_stream(source, dest):
    class Pipe(io.RawIOBase):
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            chunk = self._b.read(len(b))
            b[:len(chunk)] = chunk
            return len(chunk)

    imp = import_backup(dest, Pipe(source["zip"]))
    assert dest.verify(imp.backup_id).ok


def test_duplicate_import_reports_already_present(source, dest):
    first = import_backup(dest, io.BytesIO(source["zip"]))
    again = import_backup(dest, io.BytesIO(source["zip"]))
    assert again.already_present and again.path == first.path
    assert "already present" in again.to_text()
    assert [b.backup_id for b in dest.list_backups()] == [source["id"]]
    # importing a backup into the root it came from is the same case
    assert import_backup(source["store"], io.BytesIO(source["zip"])).already_present


def test_a_different_backup_with_the_same_id_is_refused(source, dest):
    import_backup(dest, io.BytesIO(source["zip"]))
    before = _tree(dest.folder(source["id"]))
    forged = _forge_manifest(source["zip"], lambda m: m.update(user="someone else"))
    with pytest.raises(IntegrityError, match="already holds a different backup with id .*; it is not replaced"):
        import_backup(dest, io.BytesIO(forged))
    assert _tree(dest.folder(source["id"])) == before


def test_export_refuses_a_damaged_backup_and_unknown_ids(source, tmp_path):
    store = LocalStore(tmp_path / "copy")
    imp = import_backup(store, io.BytesIO(source["zip"]))
    csv_path = Path(imp.path) / "Equipment.csv"
    data = bytearray(csv_path.read_bytes())
    data[-5] ^= 1
    csv_path.write_bytes(bytes(data))
    out = tmp_path / "x.zip"
    with pytest.raises(IntegrityError, match="Equipment.csv: not exported: sha256 mismatch"):
        export_backup(store, imp.backup_id, out)
    assert not out.exists() and list(tmp_path.glob(".x.zip*")) == []
    # a damaged backup is refused (nothing was shipped), and that is on the record
    entry, started = audit.read(store.root, limit=2)
    assert (entry["action"], entry["outcome"]) == ("export", "refused") and "not exported" in entry["error"]
    assert (started["action"], started["outcome"], started["op"]) == ("export", "started", entry["op"])
    with pytest.raises(BackupNotFound):
        export_backup(store, "20200101T000000Z", out)


def test_default_size_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("BACKUP_IMPORT_MAX_MB", raising=False)
    assert default_max_bytes() == 100 * 1024 * 1024
    monkeypatch.setenv("BACKUP_IMPORT_MAX_MB", "2.5")
    assert default_max_bytes() == int(2.5 * 1024 * 1024)
    monkeypatch.setenv("BACKUP_IMPORT_MAX_MB", "-1")
    with pytest.raises(UsageError, match="BACKUP_IMPORT_MAX_MB"):
        default_max_bytes()


# ---------------------------------------------------------------- hostile archives

def _symlink_entry(name: str) -> zipfile.ZipInfo:
    zi = zipfile.ZipInfo(name)
    zi.create_system = 3
    zi.external_attr = (stat.S_IFLNK | 0o777) << 16
    return zi


def _flip_csv_byte(name, body):
    if name == "Equipment.csv":
        b = bytearray(body)
        b[-3] ^= 0x01
        return bytes(b)
    return body


def _hostile_cases(source):
    bid, z = source["id"], source["zip"]
    good = _entries(z)
    return {
        "absolute path": (_build(good + [(f"/{bid}/evil.csv", b"x")]), ArchiveRefused, "absolute path"),
        "absolute path only": (_build([("/etc/passwd", b"x")]), ArchiveRefused, "absolute path"),
        "dot-dot entry": (_build(good + [(f"{bid}/../evil.csv", b"x")]), ArchiveRefused, r"leaves its folder"),
        "dot-dot top": (_build([("../x/manifest.json", b"{}")]), ArchiveRefused, r"leaves its folder"),
        "backslash": (_build(good + [(f"{bid}/..\\evil", b"x")]), ArchiveRefused, "backslash"),
        "symlink entry": (_build(good + [(_symlink_entry(f"{bid}/link.csv"), b"/etc/passwd")]),
                          ArchiveRefused, "symbolic link"),
        "symlink as a listed file": (
            _build([(e if not e.filename.endswith("Equipment.csv") else _symlink_entry(e.filename), b)
                    for e, b in good]), ArchiveRefused, "symbolic link"),
        "nested folder": (_build(good + [(f"{bid}/sub/x.csv", b"x")]), ArchiveRefused, "nested"),
        "two backups": (_build(good + [("20200101T000000Z/manifest.json", b"{}")]), ArchiveRefused,
                        "exactly one backup"),
        "not a backup folder": (_build([("photos/manifest.json", b"{}")]), ArchiveRefused, "not a backup id"),
        "file at top level": (_build([("manifest.json", b"{}")]), ArchiveRefused, "not inside a backup folder"),
        "duplicate name": (_build(good + [(f"{bid}/Equipment.csv", b"x")]), ArchiveRefused, "twice"),
        "extra file": (_build(good + [(f"{bid}/notes.txt", b"hello")]), ArchiveRefused,
                       "notes.txt, which the manifest does not list"),
        "missing file": (_edit(z, lambda n, b: None if n == "Equipment_select_options.csv" else b),
                         ArchiveRefused, "lacks Equipment_select_options.csv"),
        "missing manifest": (_edit(z, lambda n, b: None if n == MANIFEST else b), ArchiveRefused,
                             "no .*manifest.json"),
        "tampered csv": (_edit(z, _flip_csv_byte), IntegrityError, "Equipment.csv: sha256 mismatch"),
        "csv of another size": (_edit(z, lambda n, b: b + b"1,2\r\n" if n == "Equipment.csv" else b),
                                IntegrityError, "bytes in the archive but"),
        "tampered manifest": (_edit(z, lambda n, b: b.replace(b'"count":25', b'"count":26')
                                    if n == MANIFEST else b), IntegrityError, "does not match its recorded hash"),
        "manifest not json": (_edit(z, lambda n, b: b"not json" if n == MANIFEST else b), FormatError,
                              "not valid JSON"),
        "manifest path traversal": (
            _forge_manifest(z, lambda m: m["collections"]["Equipment"]["parts"][0].update(file="../../evil.csv")),
            FormatError, "expected 'Equipment.csv'"),
        "manifest names another id": (_forge_manifest(z, lambda m: m.update(backup_id="20200101T000000Z")),
                                      FormatError, "lives in folder"),
        "not a zip at all": (b"this is not a zip file\n" * 10, ArchiveRefused, "not a zip archive"),
        "empty file": (b"", ArchiveRefused, "not a zip archive"),
        "truncated zip": (z[: len(z) // 2], ArchiveRefused, "not a zip archive"),
        "empty zip": (_build([]), ArchiveRefused, "empty"),
    }


CASES = ["absolute path", "absolute path only", "dot-dot entry", "dot-dot top", "backslash", "symlink entry",
         "symlink as a listed file", "nested folder", "two backups", "not a backup folder", "file at top level",
         "duplicate name", "extra file", "missing file", "missing manifest", "tampered csv",
         "csv of another size", "tampered manifest", "manifest not json", "manifest path traversal",
         "manifest names another id", "not a zip at all", "empty file", "truncated zip", "empty zip"]


@pytest.mark.parametrize("case", CASES)
def test_hostile_archive_is_refused_and_nothing_listed(source, dest, tmp_path, case):
    data, error, message = _hostile_cases(source)[case]
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    with pytest.raises(error, match=message) as info:
        import_backup(dest, path, user="eve")
    assert "\n" not in str(info.value)
    _assert_nothing_listed(dest)
    # a hostile archive is refused before anything is written, and that is on the record
    entry, started = audit.read(dest.root, limit=2)
    assert (entry["action"], entry["outcome"], entry["user"]) == ("import", "refused", "eve")
    assert entry["error"] == str(info.value)
    assert (started["action"], started["outcome"], started["user"], started["op"]) == \
        ("import", "started", "eve", entry["op"])


def test_consistent_forgery_with_undecodable_rows_fails_deep_verify(source, dest):
    # hashes and manifest hash recomputed: only decoding every row can catch it
    bad_csv = {}

    def fn(name, body):
        if name == "Equipment.csv":
            lines = body.split(b"\r\n")
            lines[1] = b'"unterminated' + lines[1]
            bad_csv["data"] = b"\r\n".join(lines)
            return bad_csv["data"]
        return body

    forged = _edit(source["zip"], fn)
    d = bad_csv["data"]
    sha = hashlib.sha256(d).hexdigest()

    def consistent(m):
        m["collections"]["Equipment"].update(bytes=len(d), sha256=sha)
        m["collections"]["Equipment"]["parts"][0].update(bytes=len(d), stored_bytes=len(d), sha256=sha, object=sha)

    forged = _forge_manifest(forged, consistent)
    with pytest.raises(IntegrityError, match="does not verify: Equipment"):
        import_backup(dest, io.BytesIO(forged))
    _assert_nothing_listed(dest)


def test_oversize_archive_is_refused_before_reading(source, dest, tmp_path, monkeypatch):
    path = tmp_path / "b.zip"
    path.write_bytes(source["zip"])
    with pytest.raises(ArchiveRefused, match="larger than the import limit of 0.0 MB"):
        import_backup(dest, path, max_bytes=1000)
    with pytest.raises(ArchiveRefused, match="larger than the import limit"):
        import_backup(dest, io.BytesIO(source["zip"]), max_bytes=1000)
    monkeypatch.setenv("BACKUP_IMPORT_MAX_MB", "0.001")
    with pytest.raises(ArchiveRefused, match="larger than the import limit"):
        import_backup(dest, path)
    _assert_nothing_listed(dest)


def test_zip_bomb_declared_size_is_refused(source, dest):
    bid = source["id"]
    bomb = _build(_entries(source["zip"]) + [(f"{bid}/zeros.csv", b"\0" * (5 << 20))])
    assert len(bomb) < 100_000
    with pytest.raises(ArchiveRefused, match="possible zip bomb"):
        import_backup(dest, io.BytesIO(bomb), max_bytes=1 << 20)
    _assert_nothing_listed(dest)


def test_zip_bomb_lying_central_directory_is_refused(source, dest):
    """The directory claims the manifest's size, the data inflates to far more."""
    bid = source["id"]
    m = json.loads(dict((i.filename, b) for i, b in _entries(source["zip"]))[f"{bid}/{MANIFEST}"])
    declared = m["collections"]["Equipment"]["bytes"]
    big = b"a" * (8 << 20)
    entries = [(i, (big if i.filename.endswith("/Equipment.csv") else b)) for i, b in _entries(source["zip"])]
    data = bytearray(_build([(i.filename, b) for i, b in entries]))
    # patch the uncompressed size in the local header and the central directory of Equipment.csv
    target = f"{bid}/Equipment.csv".encode()
    for sig, size_off, name_off in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) != -1:
            nlen = struct.unpack_from("<H", data, pos + (26 if sig == b"PK\x03\x04" else 28))[0]
            if bytes(data[pos + name_off:pos + name_off + nlen]) == target:
                struct.pack_into("<I", data, pos + size_off, declared)
            pos += 4
    with pytest.raises((ArchiveRefused, IntegrityError)) as info:
        import_backup(dest, io.BytesIO(bytes(data)), max_bytes=1 << 20)
    assert any(w in str(info.value) for w in ("zip bomb", "damaged", "sha256"))
    _assert_nothing_listed(dest)


def test_missing_source_file(dest, tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        import_backup(dest, tmp_path / "nope.zip")
    with pytest.raises(UsageError, match="not a file"):
        import_backup(dest, tmp_path)
