"""Across the seams of the repository: copies between roots, archives, keys, killed writers, requests.

Issue 19's failures lived exactly here: a copy that brought manifests without
the data they shared (every later backup or restore in the target failed, or
worse, succeeded with data missing), a plaintext backup trusted where a key is
configured, an unencrypted spool left behind by a killed S3 backup, and far
more requests than a backup needs.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import BackupError
from backup_core.mirror import copy_backups
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import Key, Keyring, MANIFEST, manifest_hash, open_store
from backup_core.store.backend import s3 as s3_backend
from backup_core.store.repository import Unauthenticated
from backup_core.transfer import export_backup, import_backup

from tests.conftest import ROOT
from tests.faults.helpers import snapshot

A, B = "Alpha", "Beta"


def _seed(db) -> None:
    db[A].insert_many([{"_id": i, "v": f"a{i}" * 5} for i in range(30)])
    db[B].insert_many([{"_id": i, "w": i} for i in range(12)])


def _state(db) -> dict:
    return {n: snapshot(db, n) for n in (A, B)}


def _restore(db, store, backup_id):
    return restore_backup(db, store, backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))


def _roots(request, tmp_path, which: str) -> str:
    if which.startswith("s3"):
        bucket = request.getfixturevalue("s3_bucket")
        return f"s3://{bucket}/{which}"
    return str(tmp_path / which)


@pytest.mark.parametrize("src_kind,dst_kind", [("local", "s3"), ("s3", "local"), ("s3", "s3other"),
                                               ("local", "local2")])
@pytest.mark.parametrize("how", ["copy", "export-import"])
def test_copy_then_back_up_and_restore_in_the_target(request, tmp_path, db, src_kind, dst_kind, how):
    src = open_store(_roots(request, tmp_path, src_kind))
    dst = open_store(_roots(request, tmp_path, dst_kind))
    _seed(db)
    first = create_backup(db, src, BackupOptions(user="t"))
    states = {first.backup_id: _state(db)}
    db[B].insert_one({"_id": 99, "w": 99})  # Beta changes, Alpha does not: the second shares Alpha's data
    second = create_backup(db, src, BackupOptions(user="t"))
    states[second.backup_id] = _state(db)
    if how == "copy":
        res = copy_backups(src, dst, None, user="t", all_missing=True)
        assert res.copied == [first.backup_id, second.backup_id] and res.skipped == []
    else:
        for bid in states:
            buf = io.BytesIO()
            export_backup(src, bid, buf, user="t")
            buf.seek(0)
            import_backup(dst, buf, user="t")
    # the target never depends on the source: empty the source, then use the target
    for e in list(src.backend.list("")):
        src.backend.remove(e.name)
    for bid in states:
        assert dst.verify(bid).ok
    # a backup in the target while live Alpha equals the copied backups' Alpha (it shares that data)
    third = create_backup(db, dst, BackupOptions(user="t"))
    assert dst.verify(third.backup_id).ok
    # and restores, each exact, each with a safety backup that shares data too
    for bid, state in states.items():
        _restore(db, dst, bid)
        assert _state(db) == state
    _restore(db, dst, third.backup_id)
    assert _state(db) == states[second.backup_id]
    assert all(dst.verify(b.backup_id).ok for b in dst.list_backups())
    # the target holds each object once: no bigger than the data its backups need
    needed = {p.location for b in dst.list_backups() for e in b.collections.values() for p in e.stored_parts()}
    assert {e.name for e in dst.backend.list("data/")} == needed


def test_an_encrypted_copy_between_an_encrypted_local_root_and_s3(request, tmp_path, db):
    keyring = Keyring(Key(os.urandom(32)))
    src = open_store(str(tmp_path / "src"), keyring)
    dst = open_store(_roots(request, tmp_path, "s3"), keyring)
    _seed(db)
    bid = create_backup(db, src, BackupOptions(user="t")).backup_id
    state = _state(db)
    assert copy_backups(src, dst, [bid], user="t").copied == [bid]
    assert dst.get(bid).stored_manifest == src.get(bid).stored_manifest  # the same bytes, still encrypted
    db[A].delete_many({})
    _restore(db, dst, bid)
    assert _state(db) == state
    # without the key, the copy cannot be checked: it is skipped and said so, with a non-zero outcome
    blind = open_store(str(tmp_path / "blind"))
    with pytest.raises(BackupError) as err:
        copy_backups(dst, blind, None, user="t", all_missing=True)
    assert err.value.exit_code != 0 and err.value.payload["skipped"][0]["backup_id"] == bid
    assert "not configured" in err.value.payload["skipped"][0]["reason"]


def test_a_broken_earlier_copy_is_completed(request, tmp_path, db):
    src = open_store(str(tmp_path / "src"))
    dst = open_store(_roots(request, tmp_path, "s3"))
    _seed(db)
    bid = create_backup(db, src, BackupOptions(user="t")).backup_id
    copy_backups(src, dst, [bid], user="t")
    lost = dst.get(bid).collections[A].own.location
    dst.backend.remove(lost)  # what an old copy that did not bring shared data left
    assert not dst.verify(bid).ok
    res = copy_backups(src, dst, [bid], user="t")
    assert res.already_present == [bid] and res.repaired[bid] and dst.verify(bid).ok


def _plain_forgery(store, bid: str, tmp_path) -> None:
    """Replace an encrypted backup by a plaintext one under the same id, every hash right (a forger with
    write access to the root and no key)."""
    plain = open_store(str(tmp_path / "forge"))
    from tests.store.conftest import write_backup

    import bson

    fake = write_backup(plain, "equipment_db", {A: [bson.encode({"_id": 1, "v": "forged"})]})
    info = plain.get(fake)
    body = json.loads(info.stored_manifest)
    body["backup_id"] = bid
    body["manifest_sha256"] = manifest_hash(body)
    day = store.get(bid).day
    store.backend.remove(f"{day}/{bid}/manifest.enc")
    for e in plain.backend.list("data/"):
        with plain.backend.load(e.name) as fh:
            store.backend.save(e.name, fh.read())
    store.backend.save(f"{day}/{bid}/{MANIFEST}", json.dumps(body).encode())


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_plaintext_backup_is_refused_where_a_key_is_configured(request, tmp_path, db, kind):
    keyring = Keyring(Key(os.urandom(32)))
    store = open_store(_roots(request, tmp_path, kind), keyring)
    _seed(db)
    bid = create_backup(db, store, BackupOptions(user="t")).backup_id
    _plain_forgery(store, bid, tmp_path)
    before = _state(db)
    errors: list[str] = []
    assert store.list_backups(errors=errors) == [] and "not encrypted" in errors[0]
    for call in (lambda: store.verify(bid), lambda: _restore(db, store, bid)):
        with pytest.raises(Unauthenticated) as err:
            call()
        assert err.value.exit_code == 5
    assert _state(db) == before
    # the admin may say otherwise, explicitly: then it is read, and verify says how it was trusted
    trusting = open_store(store.url if kind == "s3" else store.root, keyring, allow_plaintext=True)
    res = trusting.verify(bid)
    assert res.ok and any("allow-plaintext" in w for w in res.warnings)


def test_a_plaintext_archive_is_refused_where_a_key_is_configured(tmp_path, db):
    _seed(db)
    plain = open_store(str(tmp_path / "plain"))
    bid = create_backup(db, plain, BackupOptions(user="t")).backup_id
    buf = io.BytesIO()
    export_backup(plain, bid, buf, user="t")
    keyed = open_store(str(tmp_path / "keyed"), Keyring(Key(os.urandom(32))))
    buf.seek(0)
    with pytest.raises(Unauthenticated, match="not encrypted"):
        import_backup(keyed, buf, user="t")
    assert keyed.list_backups() == []
    buf.seek(0)
    trusting = open_store(str(tmp_path / "keyed"), keyed.keyring, allow_plaintext=True)
    assert import_backup(trusting, buf, user="t").backup_id == bid


KILLED_S3_BACKUP = textwrap.dedent("""
    import sys
    from pymongo import MongoClient
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.store import Key, Keyring, open_store
    from backup_core.store import csvfile

    real = csvfile.Spill.documents

    def paused(self, select=None):
        print("spooled", self.path, flush=True)  # the raw documents are in the spool now
        sys.stdin.readline()
        return real(self, select)

    csvfile.Spill.documents = paused
    db = MongoClient(sys.argv[2])[sys.argv[3]]
    keyring = Keyring(Key(bytes.fromhex(sys.argv[4])))
    create_backup(db, open_store(sys.argv[1], keyring), BackupOptions(user="killed"))
""")


@pytest.mark.timeout(120)
def test_a_killed_s3_backup_leaves_no_readable_spool_and_it_is_swept(s3_root, db, mongo_uri, tmp_path):
    db[A].insert_many([{"_id": i, "secret": f"TOPSECRET-{i}"} for i in range(50)])
    key = Key(os.urandom(32))
    env = dict(os.environ, BACKUP_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_S3_BACKUP, s3_root, mongo_uri, db.name,
                             key.material.hex()], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("spooled"), proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    spooled = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert spooled  # what the killed backup left on this machine ...
    for path in spooled:  # ... is not readable: encrypted with a key that died with the process
        assert b"TOPSECRET" not in path.read_bytes()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BACKUP_CACHE_DIR", str(tmp_path / "cache"))
        store = open_store(s3_root, Keyring(key))
        assert store.leftovers()  # shown by status
        create_backup(db, store, BackupOptions(user="t"))  # the next locked operation sweeps it
        assert store.leftovers() == []
    left = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert all(p.parent.name == "index-cache" for p in left)  # only the (encrypted) cache of document indexes
    for path in left:
        assert b"TOPSECRET" not in path.read_bytes()


def test_requests_of_one_backup_and_one_restore_on_s3(s3_root, db):
    """One backup of a 2-collection database into an S3 root with 5 backups, and one replace-restore of
    one of them: the request counts the issue asks for (at most 25 and 30)."""
    _seed(db)
    store = open_store(s3_root)
    ids = []
    for i in range(5):
        db[B].insert_one({"_id": 1000 + i})
        ids.append(create_backup(db, store, BackupOptions(user="t")).backup_id)
    fresh = open_store(s3_root)  # a new process's view: nothing cached
    s3_backend.requests.reset()
    create_backup(db, fresh, BackupOptions(user="t"))
    backup_calls = dict(s3_backend.requests.calls)
    fresh = open_store(s3_root)
    s3_backend.requests.reset()
    restore_backup(db, fresh, ids[2], RestoreOptions(mode="replace", confirmed=True, user="t"))
    restore_calls = dict(s3_backend.requests.calls)
    data_reads = [key for op, key in s3_backend.requests.log if op == "GetObject" and "/data/" in (key or "")]
    print(f"\nS3 requests: backup {sum(backup_calls.values())} {backup_calls}; "
          f"restore {sum(restore_calls.values())} {restore_calls}")
    # nothing is downloaded twice: each data object of the restored backup (a full copy, and the steps
    # of the increments since) is read once, its document index not at all
    restored = {f"backups/{p.location}" for e in fresh.get(ids[2]).collections.values() for p in e.parts}
    assert len(data_reads) == len(set(data_reads)) and set(data_reads) == restored, data_reads
    assert sum(backup_calls.values()) <= 25, backup_calls
    # 30 for a backup of one object per collection; an increment's each further object costs a look
    # (is it there?) and a read
    steps = len(restored) - 2
    assert sum(restore_calls.values()) <= 30 + 2 * steps, (steps, restore_calls)
    # and exactly the case: a backup of one full copy per collection
    assert [len(e.parts) for e in fresh.get(ids[0]).collections.values()] == [1, 1]
    fresh = open_store(s3_root)
    s3_backend.requests.reset()
    restore_backup(db, fresh, ids[0], RestoreOptions(mode="replace", confirmed=True, user="t"))
    full_calls = dict(s3_backend.requests.calls)
    print(f"S3 requests: restore of full copies {sum(full_calls.values())} {full_calls}")
    assert sum(full_calls.values()) <= 30, full_calls
