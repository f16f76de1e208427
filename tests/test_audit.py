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
from backup_core.errors import DatabaseUnavailable

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
