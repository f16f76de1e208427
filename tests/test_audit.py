"""The audit log: started/outcome pairs, a hash chain that shows edits, insertions and removals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from backup_core import audit
from backup_core.audit import FileAuditLog, verify_chain
from backup_core.backup import BackupOptions, create_backup
from backup_core.config import Settings
from backup_core.context import open_operation
from backup_core.errors import DatabaseUnavailable, IntegrityError
from backup_core.store import LocalStore

from .cli import one_json
from .conftest import ROOT, run_cli


def _log(root) -> FileAuditLog:
    return FileAuditLog(audit.audit_path(root))


def _lines(root) -> list[bytes]:
    return audit.audit_path(root).read_bytes().splitlines(keepends=True)


def _write(root, lines: list[bytes]) -> None:
    audit.audit_path(root).write_bytes(b"".join(lines))


@pytest.fixture
def five(root):
    log = _log(root)
    for i in range(5):
        log.record(user="ann", action="backup", n=i)
    return log


def test_entries_are_chained_and_verify(five, root):
    report = five.verify()
    assert report.ok and report.entries == 5 and report.chained == 5
    entries = [json.loads(line) for line in _lines(root)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:]))
    assert report.head["hash"] == entries[-1]["hash"]


@pytest.mark.parametrize("damage", ["edit", "remove", "insert", "swap", "rehash-edit"])
def test_any_tampering_in_the_middle_breaks_the_chain(five, root, damage):
    lines = _lines(root)
    if damage == "edit":
        lines[2] = lines[2].replace(b'"ann"', b'"eve"')
    elif damage == "remove":
        del lines[2]
    elif damage == "insert":
        forged = json.loads(lines[1])
        forged["user"] = "eve"
        lines.insert(2, (json.dumps(forged) + "\n").encode())
    elif damage == "swap":
        lines[1], lines[2] = lines[2], lines[1]
    else:  # edit and recompute the entry's own hash: the next entry's link still breaks
        e = json.loads(lines[2])
        e["user"] = "eve"
        e["hash"] = audit.entry_hash(e)
        lines[2] = (json.dumps(e) + "\n").encode()
    _write(root, lines)
    report = verify_chain(audit.audit_path(root))
    assert not report.ok
    assert report.broken_at["line"] in (2, 3, 4)


def test_cli_audit_verify_exit_5_and_json(five, root, cli_env):
    ok = run_cli(cli_env, "audit", "--verify", "--json")
    body = one_json(ok)
    assert body["ok"] is True and body["entries"] == 5 and body["broken_at"] is None
    lines = _lines(root)
    lines[3] = lines[3].replace(b'"n": 3', b'"n": 33')
    _write(root, lines)
    bad = run_cli(cli_env, "audit", "--verify", "--json")
    assert bad.returncode == 5
    assert len(bad.stderr.strip().splitlines()) == 1 and "line 4" in bad.stderr
    body = json.loads(bad.stdout)
    assert body["ok"] is False and body["broken_at"]["line"] == 4 and body["broken_at"]["seq"] == 4


def test_a_torn_last_line_is_survived(five, root):
    with audit.audit_path(root).open("ab") as fh:
        fh.write(b'{"at": "2026-01-01T00:00:00.000Z", "user": "ann", "act')  # a crash mid-write
    five.record(user="ann", action="backup", n=5)
    report = five.verify()
    assert report.ok, report.problems
    assert any("torn" in w for w in report.warnings)
    entries = [json.loads(x) for x in _lines(root) if x.strip().endswith(b"}")]
    assert entries[-1]["n"] == 5 and entries[-1]["seq"] == 6  # a torn line is not an entry


def test_an_older_unchained_log_is_continued(root):
    path = audit.audit_path(root)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"at": "2026-01-01T00:00:00.000Z", "user": "ann", "action": "backup",
                                "outcome": "ok"}) + "\n")
    _log(root).record(user="ann", action="backup")
    report = verify_chain(path)
    assert report.ok and report.legacy == 1 and report.chained == 1
    # editing the last unchained line breaks the link to it
    lines = _lines(root)
    lines[0] = lines[0].replace(b"ann", b"eve")
    _write(root, lines)
    assert not verify_chain(path).ok


def test_concurrent_writers_keep_one_chain(root):
    import threading

    log = _log(root)
    threads = [threading.Thread(target=lambda i=i: [log.record(user=f"t{i}", action="x") for _ in range(20)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = log.verify()
    assert report.ok and report.entries == 80


def test_operation_writes_started_then_outcome(db, store):
    db["a"].insert_one({"x": 1})
    res = create_backup(db, store, BackupOptions(user="ann"))
    entries = audit.read(store.root, 10)
    assert [e["outcome"] for e in entries[:2]] == ["ok", "started"]
    assert entries[0]["op"] == entries[1]["op"] and entries[0]["backup_id"] == res.backup_id
    assert "unfinished" not in entries[1]


def test_backup_against_an_unreachable_database_is_audited(root, tmp_path):
    settings = Settings(uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300", db_name="x",
                        backup_root=root, data_dir=tmp_path / "d", user="ann")
    with pytest.raises(DatabaseUnavailable):
        with open_operation(settings, "backup", details={"database": "x"}) as ctx:
            create_backup(ctx.db, ctx.store, BackupOptions(user="ann"))
    entries = audit.read(root, 10)
    assert [(e["action"], e["outcome"]) for e in entries] == [("backup", "error"), ("backup", "started")]
    assert "127.0.0.1:9" in entries[0]["error"]


def test_cli_backup_against_an_unreachable_database_is_audited(root, tmp_path):
    env = dict(os.environ, MONGODB_URI="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300",
               BACKUP_ROOT=str(root), MONGODB_DB="x")
    proc = run_cli(env, "backup")
    assert proc.returncode == 3
    entries = audit.read(root, 10)
    assert [(e["action"], e["outcome"]) for e in entries] == [("backup", "error"), ("backup", "started")]


@pytest.mark.timeout(120)
def test_a_restore_killed_after_changing_data_shows_as_interrupted(db, store, cli_env):
    db["Equipment"].insert_many([{"_id": i, "v": i} for i in range(20)])
    db["Other"].insert_many([{"_id": i} for i in range(5)])
    res = create_backup(db, store, BackupOptions(user="t"))
    db["Equipment"].delete_many({"_id": {"$gte": 10}})
    env = dict(cli_env, BACKUP_CORE_TEST_PAUSE="swap", BACKUP_CORE_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "restore", res.backup_id, "--mode", "replace",
                             "--yes"], cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    try:
        line = proc.stderr.readline()
        assert "paused at swap" in line, line
        assert db["Equipment"].count_documents({}) == 20  # the first collection is already restored
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    listing = one_json(run_cli(cli_env, "audit", "--json", "--action", "restore"))
    started = [e for e in listing["entries"] if e["outcome"] == "started"]
    assert started and started[0]["unfinished"] is True and started[0]["interrupted"] is True
    assert not [e for e in listing["entries"] if e["outcome"] in ("ok", "error")]
    only = one_json(run_cli(cli_env, "audit", "--json", "--outcome", "interrupted"))
    assert [e["op"] for e in only["entries"]] == [started[0]["op"]]
    assert time.time()  # the chain stays intact after a kill
    assert _log(store.root).verify().ok


# ---------------------------------------------------------------- anchors, authentication, private files

def _rechain(lines: list[bytes], key=None) -> list[bytes]:
    """What a forger without the key does: recompute every seq, prev and hash (and a mac with ``key``)."""
    out, prev = [], audit.GENESIS
    for seq, raw in enumerate(lines, 1):
        e = json.loads(raw)
        for k in ("seq", "prev", "hash", "kid", "mac"):
            e.pop(k, None)
        e.update(seq=seq, prev=prev)
        if key is not None:
            e["kid"] = key.fingerprint
        e["hash"] = audit.entry_hash(e)
        if key is not None:
            e["mac"] = audit.entry_mac(key, e["hash"])
        prev = e["hash"]
        out.append((json.dumps(e) + "\n").encode())
    return out


@pytest.fixture
def anchored(data, store, settings):
    """A log with entries before and after a backup (whose manifest anchors the head)."""
    log = store.audit_log()
    for i in range(3):
        log.record(user="ann", action="login", n=i)
    res = create_backup(data, store, BackupOptions(user="ann"))
    for i in range(2):
        log.record(user="ann", action="login", n=10 + i)
    assert audit.check(settings, store).ok
    return res


@pytest.mark.parametrize("damage", ["delete", "empty", "cut-to-before-the-backup"])
def test_a_deleted_emptied_or_cut_log_fails_verify(anchored, store, settings, root, damage):
    path = audit.audit_path(root)
    if damage == "delete":
        path.unlink()
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        _write(root, _lines(root)[:3])  # a valid, shorter chain
    assert store.audit_log().verify().ok  # the file alone cannot tell
    report = audit.check(settings, store)
    assert not report.ok
    assert any(f"backup {anchored.backup_id}" in p["reason"] for p in report.problems)
    with pytest.raises(IntegrityError):
        audit.require_intact(report)


def test_cli_verify_exits_5_on_a_deleted_log_with_backups(anchored, root, cli_env):
    assert run_cli(cli_env, "audit", "--verify").returncode == 0
    audit.audit_path(root).unlink()
    bad = run_cli(cli_env, "audit", "--verify", "--json")
    assert bad.returncode == 5, bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "deleted, emptied or replaced" in bad.stderr
    assert json.loads(bad.stdout)["ok"] is False


def test_the_metadata_database_anchors_entries_after_the_last_backup(anchored, store, settings, root, db):
    # the backup's process keeps the head in the metadata database: the two logins after it too
    meta_head = db.client[settings.meta_db][audit.HEAD_COLLECTION].find_one({"_id": store.audit_log().where})
    assert meta_head["seq"] == len(_lines(root))
    _write(root, _lines(root)[:-1])  # cut the newest login: after the backup, so only the metadata can tell
    report = audit.check(settings, store)
    assert not report.ok
    assert [p["anchor"] for p in report.problems] == [f"the metadata database {settings.meta_db}"]
    assert "cut off its end" in report.problems[0]["reason"]


@pytest.mark.parametrize("rewrite", ["edit", "delete", "strip-chain-fields"])
def test_rewrites_with_recomputed_hashes_fail_against_the_anchors(anchored, store, settings, root, rewrite):
    lines = _lines(root)
    if rewrite == "edit":
        lines[1] = lines[1].replace(b'"ann"', b'"eve"')
        lines = _rechain(lines)
    elif rewrite == "delete":
        del lines[1]
        lines = _rechain(lines)
    else:
        stripped = []
        for raw in lines:
            e = json.loads(raw)
            for k in ("seq", "prev", "hash"):
                e.pop(k)
            stripped.append((json.dumps(e) + "\n").encode())
        lines = stripped
    _write(root, lines)
    assert store.audit_log().verify().ok  # the file alone looks fine
    report = audit.check(settings, store)
    assert not report.ok
    assert {p["anchor"] for p in report.problems} >= {f"backup {anchored.backup_id}"}


def test_a_backup_copied_from_another_root_is_no_anchor_of_this_log(anchored, store, tmp_path, settings):
    from dataclasses import replace

    from backup_core.mirror import copy_backups

    other = tmp_path / "other"
    copy_backups(store, LocalStore(other), [anchored.backup_id], user="ann")
    report = audit.check(replace(settings, backup_root=other), LocalStore(other))
    assert report.ok, report.problems
    assert report.anchors["other_logs"] >= 1


@pytest.fixture
def keyring(tmp_path):
    from backup_core.store.crypto import Keyring, generate_key_file

    return Keyring(generate_key_file(tmp_path / "audit.key"))


def test_with_a_key_every_entry_is_authenticated(root, keyring):
    log = FileAuditLog(audit.audit_path(root), keyring)
    for i in range(4):
        log.record(user="ann", action="login", n=i)
    entries = [json.loads(x) for x in _lines(root)]
    assert all(e["kid"] == keyring.current.fingerprint and len(e["mac"]) == 64 for e in entries)
    report = log.verify()
    assert report.ok and report.authenticated == 4
    # without the key the macs cannot be checked: said, not failed
    unkeyed = FileAuditLog(audit.audit_path(root)).verify()
    assert unkeyed.ok and unkeyed.unchecked == 4 and any("not configured" in w for w in unkeyed.warnings)


@pytest.mark.parametrize("forgery", ["edit-and-rechain", "append-unauthenticated", "append-rechained",
                                     "strip-macs", "strip-everything"])
def test_with_a_key_forgeries_after_the_last_anchor_fail(root, keyring, forgery):
    log = FileAuditLog(audit.audit_path(root), keyring)
    for i in range(4):
        log.record(user="ann", action="restore", n=i)
    lines = _lines(root)
    if forgery == "edit-and-rechain":
        lines[3] = lines[3].replace(b'"ann"', b'"eve"')
        e = json.loads(lines[3])
        e["hash"] = audit.entry_hash(e)  # the mac cannot be recomputed without the key
        lines[3] = (json.dumps(e) + "\n").encode()
    elif forgery == "append-unauthenticated":
        FileAuditLog(audit.audit_path(root)).record(user="eve", action="restore", safety_backup_id="x")
        lines = _lines(root)
    elif forgery == "append-rechained":
        forged = dict(json.loads(lines[-1]), user="eve", safety_backup_id="x")
        lines = _rechain(lines[:-1] + [(json.dumps(forged) + "\n").encode()])
        lines = lines[:-1] + _rechain(lines)[-1:]
        for i, raw in enumerate(lines[:-1]):  # keep the genuine entries' macs: only the last is forged
            lines[i] = _lines(root)[i]
    elif forgery == "strip-macs":
        lines = [(json.dumps({k: v for k, v in json.loads(x).items() if k != "mac"}) + "\n").encode()
                 for x in lines]
    else:
        lines = _rechain(lines)  # no kid, no mac, hashes recomputed: an unkeyed-looking log
    _write(root, lines)
    report = log.verify()
    if forgery == "strip-everything":
        # the file alone cannot tell a log written without a key: an anchor made with the key can
        assert report.ok
        anchor = audit.Anchor("backup X", 4, json.loads(_lines(root)[3])["hash"], log=log.where,
                              kid=keyring.current.fingerprint)
        report = log.verify([anchor])
    assert not report.ok, forgery


def test_audit_files_are_private(root, tmp_path):
    log = _log(root)
    log.record(user="ann", action="login")
    folder = audit.audit_path(root).parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert audit.audit_path(root).stat().st_mode & 0o777 == 0o600
    assert (folder / "audit.jsonl.lock").stat().st_mode & 0o777 == 0o600


class _MemBlobs:
    """The three calls a ``BlobAuditLog`` may make, counted."""

    def __init__(self):
        self.objects: dict[str, bytes] = {}
        self.calls: list[tuple] = []

    def list(self, prefix):
        self.calls.append(("list", prefix))
        return [n for n in self.objects if n.startswith(prefix)]

    def get(self, name):
        self.calls.append(("get", name))
        data = self.objects.get(name)
        return None if data is None else (data, "etag")

    def put(self, name, data, *, if_none_match=False, **kw):
        assert if_none_match is True and not kw, "only create-if-absent writes"
        self.calls.append(("put", name, len(data)))
        if name in self.objects:
            raise audit.PreconditionFailed(name)
        self.objects[name] = data


def test_an_object_store_append_is_one_small_create_if_absent_object():
    blobs = _MemBlobs()
    log = audit.BlobAuditLog(blobs, ".audit/", "mem://x/.audit/")
    log.record(user="ann", action="login")
    blobs.calls.clear()
    for i in range(20):
        log.record(user="ann", action="login", n=i)
    puts = [c for c in blobs.calls if c[0] == "put"]
    assert len(puts) == 20 and all(c[2] < 1000 for c in puts)
    assert not [c for c in blobs.calls if c[0] == "list"]  # the head is known: no listing per append
    assert sorted(blobs.objects)[-1] == ".audit/entries/000000000021.json"
    assert log.verify().ok and log.verify().entries == 21


def test_object_store_writers_racing_keep_one_chain():
    blobs = _MemBlobs()
    a = audit.BlobAuditLog(blobs, ".audit/", "mem://race/.audit/")
    a.record(user="a", action="x")
    # a second host: its own head cache, which is stale after host a appends
    audit._blob_heads.pop("mem://race/.audit/", None)
    b = audit.BlobAuditLog(blobs, ".audit/", "mem://race/.audit/")
    b.record(user="b", action="x")
    audit._blob_heads["mem://race/.audit/"] = (blobs.objects[".audit/entries/000000000001.json"].rstrip(), 1)
    a.record(user="a", action="x")  # tries seq 2, finds b's entry there, appends as seq 3
    report = a.verify()
    assert report.ok and report.entries == 3
    assert [json.loads(blobs.objects[n])["user"] for n in sorted(blobs.objects)] == ["a", "b", "a"]


def test_old_segment_logs_are_read_and_continued():
    blobs = _MemBlobs()
    lines = []  # two chained entries, as the old segment format held them
    prev = audit.GENESIS
    for seq in (1, 2):
        e = {"at": "2026-01-01T00:00:00.000Z", "user": "ann", "action": "backup", "outcome": "ok",
             "seq": seq, "prev": prev}
        e["hash"] = audit.entry_hash(e)
        prev = e["hash"]
        lines.append(json.dumps(e).encode())
    blobs.objects[".audit/segment-00000001.jsonl"] = b"\n".join(lines) + b"\n"
    log = audit.BlobAuditLog(blobs, ".audit/", "mem://old/.audit/")
    log.record(user="ann", action="login")
    assert ".audit/entries/000000000003.json" in blobs.objects
    report = log.verify()
    assert report.ok and report.entries == 3 and report.head["seq"] == 3
    assert [e["seq"] for e in log.read(10)] == [3, 2, 1]


def test_every_writer_authenticates_with_the_configured_key(settings, data, keyring, tmp_path):
    from dataclasses import replace

    from backup_core.auth import set_password

    keyed = replace(settings, key_file=keyring.current.path)
    set_password(keyed, "ann", "a long password", "admin")  # the user store's entries
    with open_operation(keyed, "backup", details={"database": data.name}) as ctx:  # operations
        create_backup(ctx.db, ctx.store, BackupOptions(user="ann"))
    entries = audit.read(keyed, None)
    assert len(entries) >= 3 and all(e.get("kid") == keyring.current.fingerprint for e in entries)
    report = audit.check(keyed)
    assert report.ok and report.authenticated == len(entries), report.problems


@pytest.mark.parametrize("rewrite", ["append-forged", "edit-and-rechain-the-tail", "cut-the-tail"])
def test_without_a_key_rewrites_after_the_newest_anchor_are_not_detected(root, store, rewrite):
    """The documented limit (docs/RELIABILITY.md): past the newest anchor, and without a key, only the
    chain speaks, and a forger can recompute it."""
    log = store.audit_log()
    for i in range(3):
        log.record(user="ann", action="login", n=i)
    anchor = audit.Anchor("backup X", 2, json.loads(_lines(root)[1])["hash"], log=log.where)
    lines = _lines(root)
    if rewrite == "append-forged":
        log.record(user="eve", action="restore", outcome="ok", safety_backup_id="x")
    elif rewrite == "edit-and-rechain-the-tail":
        lines[2] = lines[2].replace(b'"ann"', b'"eve"')
        _write(root, _rechain(lines))
    else:
        _write(root, lines[:2])
    assert log.verify([anchor]).ok
