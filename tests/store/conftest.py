"""Stores to run the same tests on: a local folder and an S3 bucket (moto), each with and without a key."""

from __future__ import annotations

import os

import pytest

from backup_core.store import Key, Keyring, open_store


def tamper(store, backup_id: str, name: str, edit) -> None:
    """Change one stored blob (a name in the repository, e.g. ``data/ab/ab...`` or a manifest) behind the
    repository's back, on any backend."""
    with store.backend.load(name) as fh:
        data = fh.read()
    store.backend.remove(name)
    store.backend.save(name, edit(data))


def write_backup(store, database: str, collections: dict, *, trigger: str = "manual") -> str:
    """A backup holding exactly ``collections`` ({name: [raw BSON]}), even documents MongoDB would refuse
    (repeated _ids), written through the repository like any backup."""
    from backup_core.store.writer import write_documents

    return write_documents(store, database, collections, trigger=trigger, user="t")


def forge_part(store, backup_id: str, collection: str, data: bytes, count_delta: int = 0) -> None:
    """Replace a collection's data by ``data`` in an unencrypted local backup and rewrite its manifest with
    every hash and size consistent, as someone with write access to the root could."""
    import hashlib
    import json

    from backup_core.store import MANIFEST, manifest_hash

    folder = store.folder(backup_id)
    m = json.loads((folder / MANIFEST).read_text())
    entry = m["collections"][collection]
    sha = hashlib.sha256(data).hexdigest()
    obj = store.root / "data" / sha[:2] / sha
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_bytes(data)
    part = entry["parts"][-1] if entry["parts"][-1]["kind"] != "deleted" else entry["parts"][-2]
    part.update(object=sha, sha256=sha, bytes=len(data), stored_bytes=len(data))
    view = folder / part["file"]
    view.unlink(missing_ok=True)
    os.link(obj, view)  # the readable file shows the forged data too
    entry.update(sha256=sha, bytes=len(data))
    part["count"] += count_delta
    entry["count"] += count_delta
    if "record_counts" in m:
        m["record_counts"][collection] = entry["count"]
    m["manifest_sha256"] = manifest_hash(m)
    (folder / MANIFEST).write_text(json.dumps(m))


def stored_objects(store) -> dict[str, bytes]:
    """Every stored blob under the root (name relative to the root -> bytes)."""
    out = {}
    for e in store.backend.list(""):
        with store.backend.load(e.name) as fh:
            out[e.name] = fh.read()
    return out


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
