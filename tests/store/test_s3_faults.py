"""An S3 root when things go wrong: the endpoint dies mid-upload, the bucket is missing, the credentials
are wrong, the endpoint throttles. One-line errors, exit 7, no visible partial backup, older backups
intact, nothing changed in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import StorageError
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.retention import RetentionPolicy, cleanup
from backup_core.store import open_store
from backup_core.store.backend import s3

from tests.conftest import ROOT, free_port, wait_for_port
from tests.faults.helpers import snapshot
from tests.store.proxies import TcpProxy, ThrottlingProxy

EQ = "Equipment"


def _port(url: str) -> int:
    return urlsplit(url).port  # type: ignore[return-value]


def _cli(env_extra: dict, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-m", "backup_core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.timeout(180)
def test_the_endpoint_dies_mid_upload(s3_endpoint, s3_bucket, db, monkeypatch):
    db[EQ].insert_many([{"_id": i, "v": "x" * 40} for i in range(50)])
    db["Other"].insert_many([{"_id": i} for i in range(10)])
    proxy = TcpProxy(_port(s3_endpoint))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    monkeypatch.setattr(s3, "READ_RETRIES", 2)
    root = f"s3://{s3_bucket}/b"
    store = open_store(root)
    older = create_backup(db, store, BackupOptions(user="t"))

    real_save = s3.S3Backend.save
    uploads = []

    def dying_save(self, name, source):
        if name.startswith("data/"):
            if uploads:  # the endpoint goes away after the first object went up, before the second
                proxy.stop()
            uploads.append(name)
        return real_save(self, name, source)

    db[EQ].update_many({}, {"$set": {"v": "changed"}})  # new data: both objects must go up
    db["Other"].insert_one({"_id": 99})
    monkeypatch.setattr(s3.S3Backend, "save", dying_save)
    with pytest.raises(StorageError) as err:
        create_backup(db, store, BackupOptions(user="t"))
    assert "\n" not in str(err.value) and len(uploads) == 2
    monkeypatch.setattr(s3.S3Backend, "save", real_save)
    # the endpoint comes back: only the older backup is visible, and it is intact
    revived = TcpProxy(_port(s3_endpoint), port=proxy.port)
    try:
        assert [b.backup_id for b in store.list_backups()] == [older.backup_id]
        assert store.verify(older.backup_id).ok
        objects = {e.name for e in store.backend.list("data/")}
        older_objects = {p.location for e in store.get(older.backup_id).collections.values()
                         for p in e.stored_parts()}  # two collections: data and document index each
        assert len(older_objects) == 4 and older_objects < objects
        assert len(objects - older_objects) == 1  # the first object of the failed backup: garbage
        assert store.leftovers() == []  # nothing of it stays on this machine
        newer = create_backup(db, store, BackupOptions(user="t"))
        cleanup(store, RetentionPolicy(keep_last=5), user="t")  # garbage collection takes the orphan
        kept = {p.location for b in store.list_backups() for e in b.collections.values() for p in e.stored_parts()}
        assert {e.name for e in store.backend.list("data/")} == kept
        assert store.verify(newer.backup_id).ok and store.verify(older.backup_id).ok
    finally:
        revived.stop()


def test_a_restore_whose_endpoint_is_gone_changes_nothing(s3_endpoint, s3_bucket, db, monkeypatch):
    db[EQ].insert_many([{"_id": i} for i in range(30)])
    proxy = TcpProxy(_port(s3_endpoint))
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    store = open_store(f"s3://{s3_bucket}/b")
    res = create_backup(db, store, BackupOptions(user="t"))
    db[EQ].delete_many({"_id": {"$lt": 10}})
    before = snapshot(db, EQ)
    proxy.stop()
    with pytest.raises(StorageError):
        restore_backup(db, store, res.backup_id, RestoreOptions(mode="replace", confirmed=True, user="t"))
    assert snapshot(db, EQ) == before


def test_a_missing_bucket(s3_endpoint, cli_env):
    for args in (("list",), ("backup",), ("restore", "20260101T000000Z", "--mode", "replace", "--yes")):
        proc = _cli(dict(cli_env, BACKUP_ROOT="s3://no-such-bucket-here/x"), *args)
        assert proc.returncode == 7, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and "does not exist" in proc.stderr


@pytest.fixture
def strict_endpoint():
    """A moto server that checks credentials: ours are not known to it."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="0")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_wrong_credentials(strict_endpoint, s3_endpoint, cli_env):
    env = dict(cli_env, BACKUP_ROOT="s3://some-bucket/x", AWS_ENDPOINT_URL=strict_endpoint,
               AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG0", AWS_SECRET_ACCESS_KEY="wrong")
    for args in (("list",), ("backup",)):
        proc = _cli(env, *args)
        assert proc.returncode == 7, proc.stderr
        assert "denied" in proc.stderr and "AWS_ACCESS_KEY_ID" in proc.stderr
        assert "wrong" not in proc.stderr.replace("AWS", "")  # the secret never shows


def test_throttling_is_retried_then_reported(s3_endpoint, s3_bucket, db, monkeypatch):
    db[EQ].insert_many([{"_id": i} for i in range(5)])
    brief = ThrottlingProxy(_port(s3_endpoint), throttle=3)
    monkeypatch.setenv("AWS_ENDPOINT_URL", brief.url)
    try:
        res = create_backup(db, open_store(f"s3://{s3_bucket}/b"), BackupOptions(user="t"))
        assert brief.throttled == 3 and res.backup_id  # botocore backed off and retried
    finally:
        brief.stop()
    endless = ThrottlingProxy(_port(s3_endpoint), throttle=-1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endless.url)
    monkeypatch.setattr(s3, "RETRY_ATTEMPTS", 3)  # the same backoff, fewer rounds: a quicker test
    try:
        with pytest.raises(StorageError, match="slow down"):
            open_store(f"s3://{s3_bucket}/b").list_backups()
        assert 3 <= endless.throttled <= 8  # a few rounds with backoff, then a clear error
    finally:
        endless.stop()
