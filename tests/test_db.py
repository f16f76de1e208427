"""Connecting: one-line errors without passwords, and the collections a user means."""

from __future__ import annotations

import pytest

from backup_core.config import Settings
from backup_core.db import connect, database_info
from backup_core.errors import ConfigError, DatabaseUnavailable
from backup_core.swapin import SwapInRegistry


def test_database_info_lists_user_collections_only(settings, db):
    db["Equipment"].insert_many([{"_id": i} for i in range(3)])
    name = SwapInRegistry.of(db).create("Equipment", "op")
    db[name].insert_one({"_id": 1})
    with connect(settings) as conn:
        info = database_info(conn)
    assert info["collections"] == {"Equipment": {"count": 3}}
    assert info["database"] == settings.db_name and not info["embedded"]


def test_unreachable_server_and_password_scrubbed(tmp_path):
    s = Settings(uri="mongodb://u:hunter22@127.0.0.1:9/", backup_root=tmp_path, data_dir=tmp_path)
    with pytest.raises(DatabaseUnavailable) as err:
        connect(s, timeout_ms=300)
    assert "hunter22" not in str(err.value) and "cannot reach MongoDB" in str(err.value)
    assert "Topology Description" not in str(err.value)


def test_malformed_uri(tmp_path):
    with pytest.raises(ConfigError, match="invalid MongoDB URI"):
        connect(Settings(uri="mongodb://a:b:c@@/", backup_root=tmp_path, data_dir=tmp_path))
