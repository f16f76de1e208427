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


class _SilentWhileBusy:
    """A TCP proxy in front of a server that, like the embedded server during a long command, answers
    nothing at all (not even the driver monitor's ``hello``) for ``busy_s`` seconds after an insert."""

    def __init__(self, target_port: int, busy_s: float) -> None:
        import socket
        import threading

        self.target, self.busy_s, self.quiet_until = target_port, busy_s, 0.0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(50)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src, dst, to_server: bool) -> None:
        import time

        try:
            while data := src.recv(65536):
                if to_server and b"\x02insert\x00" in data:
                    self.quiet_until = time.monotonic() + self.busy_s
                if not to_server:
                    time.sleep(max(0.0, self.quiet_until - time.monotonic()))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        self.sock.close()


@pytest.mark.timeout(90)
def test_a_restore_survives_an_embedded_server_that_is_silent_for_long(mongo_uri, db, store, tmp_path):
    """The driver's monitor gave up on a server silent for more than 5 s and cancelled the restore's
    insert ("staging collection big failed: operation cancelled"); the embedded server may be silent
    for as long as one command takes."""
    from urllib.parse import urlsplit

    from backup_core.backup import BackupOptions, create_backup
    from backup_core.restore import RestoreOptions, restore_backup

    if "MONGODB_TEST_URI" in __import__("os").environ:
        pytest.skip("the proxied server must be the embedded one")
    db["big"].insert_many([{"_id": i, "v": i} for i in range(50)])
    backup = create_backup(db, store, BackupOptions(user="t"))
    db["big"].delete_many({"_id": {"$gte": 25}})
    proxy = _SilentWhileBusy(urlsplit(mongo_uri).port, busy_s=7.0)
    try:
        # the monitor checks every 0.5 s here (every 10 s by default), so one check surely falls in the silence
        uri = f"mongodb://127.0.0.1:{proxy.port}/?directConnection=true&heartbeatFrequencyMS=500"
        settings = Settings(uri=uri, db_name=db.name, backup_root=store.root, data_dir=tmp_path / "d")
        with connect(settings) as conn:
            result = restore_backup(conn.db, store, backup.backup_id, RestoreOptions(confirmed=True, user="t"))
    finally:
        proxy.close()
    assert result.collections["big"].inserted == 25
    assert db["big"].count_documents({}) == 50
