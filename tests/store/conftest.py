"""Stores to run the same tests on: a local folder and an S3 bucket (moto), each with and without a key."""

from __future__ import annotations

import os

import pytest

from backup_core.store import Key, Keyring, open_store


def tamper(store, backup_id: str, name: str, edit) -> None:
    """Change one stored object of a backup behind the store's back, on any backend."""
    info = store.get(backup_id)
    if store.url.startswith("s3://"):
        key = store.key(f"{info.day}/{backup_id}/{name}")
        data = store.c.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        store.c.put_object(Bucket=store.bucket, Key=key, Body=edit(data))
    else:
        path = store.folder(backup_id) / name
        path.write_bytes(edit(path.read_bytes()))


def stored_objects(store) -> dict[str, bytes]:
    """Every stored object under the root (name relative to the root -> bytes)."""
    if store.url.startswith("s3://"):
        out = {}
        for k, _size, _ in store._list(store.prefix_slash):
            out[k[len(store.prefix_slash):]] = store.c.get_object(Bucket=store.bucket, Key=k)["Body"].read()
        return out
    return {str(p.relative_to(store.root)): p.read_bytes() for p in store.root.rglob("*") if p.is_file()}


def _store(request, tmp_path):
    keyring = Keyring(Key(os.urandom(32))) if request.param.endswith("+key") else Keyring()
    root = request.getfixturevalue("s3_root") if request.param.startswith("s3") else tmp_path / "store"
    return open_store(root, keyring)


@pytest.fixture(params=["local", "s3", "local+key", "s3+key"])
def any_store(request, tmp_path):
    return _store(request, tmp_path)


@pytest.fixture(params=["local+key", "s3+key"])
def encrypted_store(request, tmp_path):
    return _store(request, tmp_path)
