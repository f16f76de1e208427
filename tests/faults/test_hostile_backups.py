"""Hostile or damaged backup folders: verify fails and restore is refused before any write.

Each case damages a real backup. Where the damage is to a data file, the test
runs twice: once as is (the manifest's size/sha256 catch it) and once with the
manifest "fixed up" (sizes, hashes and ``manifest_sha256`` recomputed with
``store.manifest_hash``), which exercises the deeper checks: decoding every row,
counts, key uniqueness. Manifest edits are likewise tested with and without a
recomputed manifest hash. "Refused before any write" means: live data
byte-for-byte unchanged, no safety backup written, no swap-in collection left.
"""

from __future__ import annotations

import json
import shutil

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.demo_data import seed_demo
from backup_core.errors import BackupError, FormatError, IntegrityError
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.swapin import SwapInRegistry
from backup_core.store import MANIFEST, LocalStore, manifest_hash

from tests.store.conftest import forge_part
from tests.faults.helpers import snapshot

EQ = "Equipment"


@pytest.fixture
def backup(db, store):
    seed_demo(db)
    return create_backup(db, store, BackupOptions(user="t"))


@pytest.fixture
def gz_backup(db, store):
    seed_demo(db)
    return create_backup(db, store, BackupOptions(user="t", compress=True))


def _paths(store: LocalStore, backup_id: str):
    info = store.get(backup_id)
    folder = store.folder(backup_id)
    return folder / MANIFEST, folder / info.collection(EQ).file


def _edit_manifest(store: LocalStore, backup_id: str, edit, *, rehash: bool) -> None:
    manifest_path, _ = _paths(store, backup_id)
    manifest = json.loads(manifest_path.read_text())
    edit(manifest)
    if rehash:
        manifest["manifest_sha256"] = manifest_hash(manifest)
    manifest_path.write_text(json.dumps(manifest, indent=2))


def _replace_data(store: LocalStore, backup_id: str, data: bytes, *, rehash: bool, count_delta: int = 0) -> None:
    """Change the collection's data: as-is, in place (the readable file is the data object: the object
    changes under its name); fixed up, as a new object with every hash and size in the manifest consistent."""
    if rehash:
        forge_part(store, backup_id, EQ, data, count_delta)
    else:
        _, data_path = _paths(store, backup_id)
        data_path.write_bytes(data)


def _committed(store: LocalStore) -> list[str]:
    """Backup folders with a manifest (what a restore could have added), without trusting listing."""
    return sorted(p.parent.name for p in store.root.glob(f"*/*/{MANIFEST}"))


def _assert_refused(db, store: LocalStore, backup_id: str, cli=None) -> str:
    """verify fails (or raises) and restore raises before any write; returns the reason."""
    before_ids = _committed(store)
    live = {n: snapshot(db, n) for n in db.list_collection_names()}
    try:
        res = store.verify(backup_id)
        assert not res.ok, "verify passed a damaged backup"
        reason = "; ".join(res.problems)
    except IntegrityError as exc:  # FormatError/CodecError are IntegrityErrors
        reason = str(exc)
    for mode in ("replace", "merge"):
        with pytest.raises(BackupError) as err:
            restore_backup(db, store, backup_id, RestoreOptions(mode=mode, confirmed=True, lock_timeout=5))
        assert str(err.value) and "\n" not in str(err.value)
    assert {n: snapshot(db, n) for n in db.list_collection_names()} == live, "live data changed"
    assert SwapInRegistry.of(db).leftovers() == []  # no swap-in collection left (names: checked above)
    after_ids = _committed(store)
    assert [i for i in after_ids if i not in before_ids] == [], "a safety backup was written: not refused early"
    if cli is not None:
        for args in (("verify", backup_id), ("restore", backup_id, "--mode", "replace", "--yes")):
            out = cli(*args)
            assert out.returncode != 0, f"{args[0]} accepted a damaged backup"
            assert out.stderr.strip() and len(out.stderr.strip().splitlines()) == 1, out.stderr
    return reason


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-fixed-up"])
def test_tampered_csv(rehash, db, store, backup, cli):
    _, data_path = _paths(store, backup.backup_id)
    lines = data_path.read_bytes().split(b"\r\n")
    # an int32 column cell made non-numeric, same length
    header = lines[0].split(b",")
    col = header.index(b"quantity")
    row = lines[5].split(b",")
    assert row[col].isdigit()
    row[col] = b"x" * len(row[col])
    lines[5] = b",".join(row)
    _replace_data(store, backup.backup_id, b"\r\n".join(lines), rehash=rehash)
    reason = _assert_refused(db, store, backup.backup_id, cli)
    assert ("sha256" in reason) if not rehash else ("int32" in reason or "unreadable" in reason), reason


@pytest.mark.timeout(120)
def test_one_byte_flipped_keeps_size_fails_the_hash(db, store, backup):
    _, data_path = _paths(store, backup.backup_id)
    data = bytearray(data_path.read_bytes())
    i = data.index(b"EQ-00010")
    data[i + 7] = ord("9")  # a plausible, decodable edit: only the hash can tell
    data_path.write_bytes(bytes(data))
    assert "sha256 mismatch" in _assert_refused(db, store, backup.backup_id)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-fixed-up"])
def test_truncated_gzip(rehash, db, store, gz_backup, cli):
    _, data_path = _paths(store, gz_backup.backup_id)
    assert data_path.name.endswith(".csv.gz")
    data = data_path.read_bytes()
    _replace_data(store, gz_backup.backup_id, data[: len(data) // 2], rehash=rehash)
    reason = _assert_refused(db, store, gz_backup.backup_id, cli)
    assert ("size" in reason) if not rehash else ("damaged" in reason or "unreadable" in reason), reason


@pytest.mark.timeout(120)
def test_gzip_that_is_not_gzip(db, store, gz_backup):
    _replace_data(store, gz_backup.backup_id, b"plain text, not gzip\r\n", rehash=True)
    _assert_refused(db, store, gz_backup.backup_id)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("path", ["../../evil.csv", "../Equipment.csv", "/etc/passwd", "sub/Equipment.csv",
                                  "Equipment.csv\x00.txt", "."])
@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-fixed-up"])
def test_manifest_with_unsafe_path(path, rehash, db, store, root, backup, cli):
    (root / "evil.csv").write_text("_id,__bson_row__\r\n")  # a target for ../ to find
    _edit_manifest(store, backup.backup_id, lambda m: m["collections"][EQ]["parts"][0].__setitem__("file", path),
                   rehash=rehash)
    with pytest.raises(IntegrityError) as err:
        store.get(backup.backup_id)
    assert ("expected" in str(err.value)) if rehash else ("hash" in str(err.value)), str(err.value)
    _assert_refused(db, store, backup.backup_id, cli)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-fixed-up"])
def test_one_damaged_manifest_does_not_break_listing(rehash, db, store, backup):
    """The other backups stay listed; the damaged one is reported in ``errors``, not raised."""
    second = create_backup(db, store, BackupOptions(user="t"))
    _edit_manifest(store, backup.backup_id, lambda m: m.__setitem__("database", "other"), rehash=rehash)
    if rehash:  # a consistent edit is a valid (if re-targeted) manifest
        assert len(store.list_backups()) == 2
        return
    errors: list[str] = []
    assert [b.backup_id for b in store.list_backups(errors=errors)] == [second.backup_id]
    assert len(errors) == 1 and backup.backup_id in errors[0] and "hash" in errors[0]


@pytest.mark.timeout(120)
def test_manifest_collection_name_with_path_separators(db, store, backup):
    def edit(m):
        m["collections"]["../../x"] = m["collections"].pop(EQ)
    _edit_manifest(store, backup.backup_id, edit, rehash=True)
    with pytest.raises(FormatError):
        store.get(backup.backup_id)
    _assert_refused(db, store, backup.backup_id)


@pytest.mark.timeout(120)
def test_duplicate_ids_refuse_the_restore(db, store, backup):
    _, data_path = _paths(store, backup.backup_id)
    lines = data_path.read_bytes().split(b"\r\n")
    assert lines[-1] == b""
    lines.insert(3, lines[2])  # the same document twice
    _replace_data(store, backup.backup_id, b"\r\n".join(lines), rehash=True, count_delta=1)
    before = snapshot(db, EQ)
    for mode in ("replace", "merge"):
        with pytest.raises(BackupError) as err:
            restore_backup(db, store, backup.backup_id, RestoreOptions(mode=mode, confirmed=True))
        assert "unique" in str(err.value)
    assert snapshot(db, EQ) == before
    assert [b.backup_id for b in store.list_backups()] == [backup.backup_id]


@pytest.mark.timeout(120)
def test_duplicate_ids_fail_verify(db, store, backup):
    _, data_path = _paths(store, backup.backup_id)
    lines = data_path.read_bytes().split(b"\r\n")
    lines.insert(3, lines[2])
    _replace_data(store, backup.backup_id, b"\r\n".join(lines), rehash=True, count_delta=1)
    result = store.verify(backup.backup_id)
    assert not result.ok
    assert any("occurs more than once" in p for p in result.problems)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("damage", ["latin-1", "utf-16", "bom", "surrogate"])
def test_wrong_encoding_or_bom(damage, db, store, backup, cli):
    _, data_path = _paths(store, backup.backup_id)
    text = data_path.read_bytes().decode("utf-8")
    data = {"latin-1": lambda: text.encode("latin-1", errors="replace"),
            "utf-16": lambda: text.encode("utf-16"),
            "bom": lambda: b"\xef\xbb\xbf" + text.encode("utf-8"),
            # an encoded UTF-16 surrogate: invalid UTF-8 that lenient decoders pass through
            "surrogate": lambda: text.encode("utf-8").replace(b"EQ-00012", b"EQ-\xed\xa0\x8012")}[damage]()
    _replace_data(store, backup.backup_id, data, rehash=True)
    reason = _assert_refused(db, store, backup.backup_id, cli)
    if damage == "bom":
        assert "byte-order mark" in reason


@pytest.mark.timeout(180)
def test_a_50_mb_cell(db, store, backup):
    _, data_path = _paths(store, backup.backup_id)
    lines = data_path.read_bytes().split(b"\r\n")
    header = lines[0].split(b",")
    col = header.index(b"serial")
    row = lines[4].split(b",")
    row[col] = b"A" * (50 * 1024 * 1024)
    lines[4] = b",".join(row)
    _replace_data(store, backup.backup_id, b"\r\n".join(lines), rehash=True)
    reason = _assert_refused(db, store, backup.backup_id)
    assert "limit" in reason or "larger" in reason or "16 MiB" in reason, reason


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rehash", [False, True], ids=["as-is", "manifest-fixed-up"])
def test_manifest_of_a_future_format_version(rehash, db, store, backup, cli):
    _edit_manifest(store, backup.backup_id, lambda m: m.__setitem__("format_version", 99), rehash=rehash)
    with pytest.raises(FormatError) as err:
        store.get(backup.backup_id)
    assert "version 99" in str(err.value)
    _assert_refused(db, store, backup.backup_id, cli)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("edit", ["count", "schema-type", "schema-column", "not-json", "empty", "array"])
def test_manifest_edits(edit, db, store, backup):
    manifest_path, _ = _paths(store, backup.backup_id)
    if edit in ("not-json", "empty", "array"):
        manifest_path.write_bytes({"not-json": b"{\"format_version\": 1,", "empty": b"", "array": b"[]"}[edit])
    else:
        def change(m):
            entry = m["collections"][EQ]
            if edit == "count":
                entry["count"] += 1
            elif edit == "schema-type":
                next(c for c in entry["parts"][0]["schema"]["columns"] if c["name"] == "quantity")["type"] = "date"
            else:
                entry["parts"][0]["schema"]["columns"][1]["name"] = "renamed"
        _edit_manifest(store, backup.backup_id, change, rehash=True)
    _assert_refused(db, store, backup.backup_id)


@pytest.mark.timeout(120)
def test_symlinked_or_missing_data_object(db, store, root, backup, tmp_path):
    """The backup's data is its objects: a link there, or a missing one, refuses the restore."""
    part = store.get(backup.backup_id).collection(EQ).own
    obj = root / part.location
    outside = tmp_path / "outside.csv"
    shutil.copy(obj, outside)
    obj.unlink()
    obj.symlink_to(outside)  # same bytes, but a link could point anywhere
    assert "symbolic link" in _assert_refused(db, store, backup.backup_id)
    obj.unlink()
    assert "missing" in _assert_refused(db, store, backup.backup_id)
    shutil.copy(outside, obj)
    assert store.verify(backup.backup_id).ok


@pytest.mark.timeout(120)
def test_a_changed_readable_folder_fails_verify_and_restores_the_real_data(db, store, root, backup, tmp_path):
    """The readable files are a view of the objects: a link or a stowaway there fails verify (someone
    changed the folder), while a restore still gives back exactly the backed-up data."""
    _, view = _paths(store, backup.backup_id)
    original = {n: snapshot(db, n) for n in db.list_collection_names()}
    outside = tmp_path / "outside.csv"
    outside.write_bytes(view.read_bytes().replace(b"EQ-00010", b"EQ-99999"))
    view.unlink()
    view.symlink_to(outside)
    res = store.verify(backup.backup_id)
    assert not res.ok and f"unexpected link {view.name}" in res.problems
    (view.parent / "stowaway.csv").write_text("x")
    assert "unexpected file stowaway.csv" in store.verify(backup.backup_id).problems
    db[EQ].delete_many({})
    restore_backup(db, store, backup.backup_id, RestoreOptions(mode="replace", confirmed=True))
    assert {n: snapshot(db, n) for n in db.list_collection_names() if n in original} == original
