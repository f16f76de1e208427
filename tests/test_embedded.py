"""Tests of the embedded server (backup_core.embedded), connecting (backup_core.db)
and ``python -m backup_core server``.

Every server a test starts is killed in teardown: servers spawned by
``ensure_server`` are detached, so they are found by their data dir (unique per
test) in their command line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pymongo
import pytest
from bson import Decimal128, Int64, ObjectId

from backup_core import embedded
from backup_core.config import Settings
from backup_core.db import Connection, connect, database_info
from backup_core.demo_data import seed_demo
from backup_core.embedded import ensure_server, read_server_file, serve
from backup_core.errors import BackupError, ConfigError, DatabaseUnavailable
from backup_core.locks import process_alive as pid_alive

PROJECT = Path(__file__).resolve().parent.parent
PY = sys.executable


# --------------------------------------------------------------------------
# helpers and fixtures


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT), env.get("PYTHONPATH")) if p)
    for name in ("MONGODB_URI", "MONGODB_DB", "EMBEDDED_DATA_DIR"):
        env.pop(name, None)
    return env


def _server_pids(data_dir: Path) -> list[int]:
    """Live ``backup_core server`` processes serving ``data_dir``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv]
        if "backup_core" in args and "server" in args and str(data_dir) in args:
            if pid_alive(int(entry.name)):
                pids.append(int(entry.name))
    return pids


def _wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still running after {timeout} s")
        time.sleep(0.05)


def _kill_servers(data_dir: Path) -> None:
    pids = _server_pids(data_dir)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            _wait_gone(pid, timeout=5)
        except AssertionError:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    _kill_servers(path)


def _client(uri: str) -> pymongo.MongoClient:
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)


class ThreadServer:
    """``serve`` in a background thread of the test process (no subprocess start-up cost)."""

    def __init__(self, data_dir: Path | None, **kw) -> None:
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.uri: str | None = None
        self.error: BaseException | None = None

        def on_ready(uri: str) -> None:
            self.uri = uri
            self.ready.set()

        def target() -> None:
            try:
                serve(data_dir, on_ready=on_ready, stop_event=self.stop, **kw)
            except BaseException as exc:  # surfaced by start()
                self.error = exc
                self.ready.set()

        self.thread = threading.Thread(target=target, daemon=True)

    def start(self, timeout: float = 20) -> str:
        self.thread.start()
        assert self.ready.wait(timeout), "server did not become ready"
        if self.error:
            raise self.error
        assert self.uri
        return self.uri

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.fixture
def thread_server(data_dir: Path) -> Iterator[ThreadServer]:
    srv = ThreadServer(data_dir)
    srv.start()
    yield srv
    srv.close()


# --------------------------------------------------------------------------
# start, reuse, restart


def test_concurrent_callers_share_one_server(data_dir: Path) -> None:
    code = ("import sys; from pathlib import Path; from backup_core.embedded import ensure_server; "
            "print(ensure_server(Path(sys.argv[1])))")
    procs = [subprocess.Popen([PY, "-c", code, str(data_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)]
    thread_uris: list[str] = []
    threads = [threading.Thread(target=lambda: thread_uris.append(ensure_server(data_dir))) for _ in range(2)]
    for t in threads:
        t.start()
    outs = [p.communicate(timeout=40) for p in procs]
    for t in threads:
        t.join(40)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    uris = {out.strip() for out, _ in outs} | set(thread_uris)
    assert len(thread_uris) == 2
    assert len(uris) == 1, uris
    (uri,) = uris
    assert uri.startswith("mongodb://127.0.0.1:")

    pids = _server_pids(data_dir)
    assert len(pids) == 1, pids
    info = read_server_file(data_dir)
    assert info is not None and info["pid"] == pids[0] and info["uri"] == uri
    assert set(info) >= {"pid", "port", "uri", "started_at"}
    with _client(uri) as client:
        assert client.admin.command("ping")["ok"] == 1


def test_data_persists_across_restarts_and_seed_happens_once(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir)
    with connect(settings) as conn:
        assert conn.embedded
        info = database_info(conn)
        assert info["collections"]["Equipment"]["count"] == 150
        assert info["collections"]["Equipment_select_options"]["count"] == 45
        assert info["database"] == "equipment_db" and info["embedded"] is True
        # The admin clears the demo data and writes their own.
        conn.db.Equipment.delete_many({})
        conn.db.mine.insert_one({"_id": 1, "v": Decimal128("1.10"), "n": Int64(5)})
    first = read_server_file(data_dir)
    assert first is not None

    # Clean stop: SIGTERM removes the discovery file.
    os.kill(first["pid"], signal.SIGTERM)
    _wait_gone(first["pid"])
    assert read_server_file(data_dir) is None

    with connect(settings) as conn:
        second = read_server_file(data_dir)
        assert second is not None and second["pid"] != first["pid"]
        assert conn.db.mine.find_one({"_id": 1}) == {"_id": 1, "v": Decimal128("1.10"), "n": 5}
        assert conn.db.Equipment.count_documents({}) == 0, "demo data must not come back"
        assert conn.db.Equipment_select_options.count_documents({}) == 45
        conn.db.mine.insert_one({"_id": 2})

    # Hard kill leaves a stale server.json behind; the next caller replaces it.
    os.kill(second["pid"], signal.SIGKILL)
    _wait_gone(second["pid"])
    assert read_server_file(data_dir)["pid"] == second["pid"]
    uri = ensure_server(data_dir)
    third = read_server_file(data_dir)
    assert third["pid"] not in (first["pid"], second["pid"]) and third["uri"] == uri
    with _client(uri) as client:
        assert sorted(d["_id"] for d in client.equipment_db.mine.find()) == [1, 2]
    assert _server_pids(data_dir) == [third["pid"]]


def test_ensure_server_reports_a_server_that_cannot_start(data_dir: Path) -> None:
    # A directory where the SQLite file should be: the server exits at once.
    (data_dir / embedded.SQLITE_FILE).mkdir(parents=True)
    with pytest.raises(DatabaseUnavailable) as err:
        ensure_server(data_dir, timeout=20)
    message = str(err.value)
    assert "\n" not in message
    assert "unable to open database file" in message
    assert _server_pids(data_dir) == []


# --------------------------------------------------------------------------
# demo data, single instance


def test_seed_has_the_promised_variety(thread_server: ThreadServer, data_dir: Path) -> None:
    with _client(thread_server.uri) as client:
        db = client.equipment_db
        assert sorted(db.list_collection_names()) == ["Equipment", "Equipment_select_options"]
        docs = list(db.Equipment.find().sort("asset_id", 1))
        options = list(db.Equipment_select_options.find())
        index_keys = [ix["key"] for ix in db.Equipment.index_information().values() if ix.get("unique")]
        assert [("asset_id", 1)] in index_keys

    assert len(docs) == 150 and len(options) == 45
    assert [d["asset_id"] for d in docs] == [f"EQ-{i:05d}" for i in range(1, 151)]
    assert all(isinstance(d["_id"], ObjectId) for d in docs)
    assert all(isinstance(d["price"], Decimal128) for d in docs)
    assert all(isinstance(d["usage_ms"], Int64) and d["usage_ms"] > 2**31 for d in docs)
    assert all(isinstance(d["weight_kg"], float) and isinstance(d["quantity"], int) for d in docs)
    for d in docs:
        assert isinstance(d["purchase_date"], dt.datetime) and d["purchase_date"].tzinfo is None
        assert d["purchase_date"].microsecond % 1000 == 0
        assert isinstance(d["location"], dict) and len(d["location"]["coordinates"]) == 2
        assert isinstance(d["tags"], list) and isinstance(d["maintenance"], list)
    assert any(d["maintenance"] and isinstance(d["maintenance"][0]["date"], dt.datetime) for d in docs)
    assert 10 < sum("warranty_until" not in d for d in docs) < 140  # optional field, sometimes missing
    assert any("notes" not in d for d in docs) and any(d.get("notes") is None and "notes" in d for d in docs)
    assert any(d["assigned_to"] is None for d in docs)
    assert any(d["serial"] == "" for d in docs) and any(d["tags"] == [] for d in docs)
    notes = [d["notes"] for d in docs if d.get("notes")]
    assert any("," in n and '"' in n and "\n" in n for n in notes)
    assert any(n.startswith("=") for n in notes)
    text = json.dumps([d["name"] for d in docs] + notes, ensure_ascii=False)
    assert "é" in text and "顕" in text and any(ord(ch) > 0xFFFF for ch in text)  # accents, CJK, emoji
    assert len({tuple(d) for d in docs}) > 1  # field order and presence vary

    fields = {o["field"] for o in options}
    assert {"category", "status"} <= fields
    assert all(isinstance(o["order"], int) and isinstance(o["active"], bool) for o in options)
    assert {d["category"] for d in docs} <= {o["value"] for o in options if o["field"] == "category"}

    marker = data_dir / embedded.SEED_MARKER
    assert marker.exists()


def test_list_databases_answers_once_data_holds_decimal128_and_other_types(thread_server: ThreadServer) -> None:
    # the demo data holds Decimal128: listDatabases, dbStats and collStats used to fail with
    # "$bsonSize cannot encode value of type Decimal128" (mongosh's `show dbs` too)
    from bson import Binary, Code, MaxKey, MinKey, Regex, Timestamp

    with _client(thread_server.uri) as client:
        assert "equipment_db" in client.list_database_names()
        doc = {"_id": 1, "d": Decimal128("1.5"), "lo": MinKey(), "hi": MaxKey(), "code": Code("f()", {"a": 1}),
               "re": Regex("^a", "i"), "ts": Timestamp(1, 2), "bin": Binary(b"x", 4), "big": Int64(5),
               "deep": [{"d": Decimal128("-0")}]}
        client.more.kinds.insert_one(doc)
        listed = client.admin.command("listDatabases")
        assert {d["name"] for d in listed["databases"]} >= {"equipment_db", "more"}
        sizes = {d["name"]: d["sizeOnDisk"] for d in listed["databases"]}
        import bson

        stored = client.more.kinds.find_one({"_id": 1})
        assert sizes["more"] == len(bson.encode(stored))  # the exact size of what is stored
        assert client.more.command("dbStats")["objects"] == 1
        assert client.equipment_db.command("collStats", "Equipment")["count"] == 150


def test_seed_demo_is_deterministic(thread_server: ThreadServer) -> None:
    with _client(thread_server.uri) as client:
        counts = seed_demo(client.again)
        assert counts == {"Equipment": 150, "Equipment_select_options": 45}
        for name in counts:
            assert list(client.again[name].find().sort("_id", 1)) == \
                list(client.equipment_db[name].find().sort("_id", 1))


def test_second_server_on_same_data_dir_is_refused(thread_server: ThreadServer, data_dir: Path) -> None:
    with pytest.raises(BackupError, match="already running") as err:
        serve(data_dir, stop_event=threading.Event())
    assert str(thread_server.uri) in str(err.value)

    # The same through the CLI: non-zero exit, one line on stderr.
    proc = subprocess.run([PY, "-m", "backup_core", "server", "--data", str(data_dir)],
                          capture_output=True, text=True, timeout=30, env=_env())
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "already running" in proc.stderr

    # ensure_server finds the running one instead of starting another.
    assert ensure_server(data_dir) == thread_server.uri
    assert _server_pids(data_dir) == []


def test_restart_after_stop_event_keeps_seed_marker(data_dir: Path) -> None:
    srv = ThreadServer(data_dir)
    uri = srv.start()
    with _client(uri) as client:
        client.equipment_db.Equipment_select_options.drop()
    srv.close()
    assert read_server_file(data_dir) is None

    srv = ThreadServer(data_dir)
    uri = srv.start()
    try:
        with _client(uri) as client:
            assert client.equipment_db.Equipment.count_documents({}) == 150
            assert client.equipment_db.Equipment_select_options.count_documents({}) == 0
    finally:
        srv.close()


# --------------------------------------------------------------------------
# python -m backup_core server


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout):
        raise AssertionError("no line from the server in time")
    return proc.stdout.readline()


def test_cli_server_memory_json_prints_one_working_uri(tmp_path: Path) -> None:
    proc = subprocess.Popen([PY, "-m", "backup_core", "server", "--memory", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=_env())
    try:
        info = json.loads(_read_line(proc, timeout=30))
        assert set(info) >= {"uri", "port", "pid", "data_dir", "memory"}
        assert info["memory"] is True and info["pid"] == proc.pid and info["data_dir"] is None
        assert info["uri"].startswith(f"mongodb://127.0.0.1:{info['port']}/")
        with _client(info["uri"]) as client:
            assert client.admin.command("ping")["ok"] == 1
            assert client.equipment_db.Equipment.count_documents({}) == 150  # memory mode seeds too
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert out == "", "exactly one JSON document on stdout"
        assert not (tmp_path / ".data").exists(), "memory mode must not touch a data dir"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_server_plain_prints_uri_and_stops_on_sigint(data_dir: Path) -> None:
    proc = subprocess.Popen([PY, "-m", "backup_core", "server", "--data", str(data_dir), "--no-seed"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        uri = _read_line(proc, timeout=30).strip()
        assert uri.startswith("mongodb://127.0.0.1:")
        assert read_server_file(data_dir)["uri"] == uri
        with _client(uri) as client:
            assert client.list_database_names() in ([], ["admin"], ["admin", "local"], ["local"])
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert read_server_file(data_dir) is None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# connect() errors


def test_connect_unreachable_is_one_line_without_password() -> None:
    settings = Settings(uri="mongodb://admin:s3cr3t-pw@127.0.0.1:1/?authSource=admin")
    start = time.monotonic()
    with pytest.raises(DatabaseUnavailable) as err:
        connect(settings, timeout_ms=300)
    assert time.monotonic() - start < 10
    message = str(err.value) + err.value.hint
    assert "s3cr3t-pw" not in message
    assert "\n" not in message
    assert "admin:***@127.0.0.1:1" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


@pytest.mark.parametrize("uri", [
    "mongodb://admin:s3cr3t-pw@",                  # no host
    "http://admin:s3cr3t-pw@localhost/",            # wrong scheme
    "mongodb://admin:s3cr3t-pw@localhost:notaport/",
])
def test_connect_malformed_uri_is_config_error(uri: str) -> None:
    with pytest.raises(ConfigError) as err:
        connect(Settings(uri=uri), timeout_ms=300)
    assert "s3cr3t-pw" not in str(err.value) and "\n" not in str(err.value)


def test_connection_is_a_context_manager(thread_server: ThreadServer, data_dir: Path) -> None:
    # A running server for the data dir is found through server.json.
    with connect(Settings(data_dir=data_dir, db_name="equipment_db")) as conn:
        assert isinstance(conn, Connection) and conn.embedded
        assert str(data_dir) in conn.uri_display
        assert database_info(conn)["collections"]["Equipment"] == {"count": 150}
    with pytest.raises(pymongo.errors.InvalidOperation):
        conn.db.Equipment.find_one()


# --------------------------------------------------------------------------
# the SQLite engine's one storage limit, handled by restore


def test_restore_of_nan_into_sqlite_is_refused_and_rolled_back(thread_server: ThreadServer, db,
                                                               store) -> None:
    """The SQLite engine cannot store NaN: both modes fail with the reason and change nothing."""
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.restore import RestoreOptions, restore_backup
    from backup_core.swapin import SwapInRegistry

    db.c.insert_many([{"_id": i, "x": float(i)} for i in range(5)] + [{"_id": 5, "x": float("nan")}])
    bid = create_backup(db, store, BackupOptions()).backup_id
    with _client(thread_server.uri) as client:
        target = client[db.name]
        target.c.insert_many([{"_id": 0, "x": "live"}, {"_id": 9, "x": "only live"}])
        before = list(target.c.find(sort=[("_id", 1)]))
        for mode in ("replace", "merge"):
            with pytest.raises(DatabaseUnavailable) as err:
                restore_backup(target, store, bid, RestoreOptions(mode=mode, confirmed=True))
            assert "NaN" in err.value.hint, err.value.hint
            assert list(target.c.find(sort=[("_id", 1)])) == before, mode
            # no swap-in collection left: the registry knows none, only the user's collection is there
            assert SwapInRegistry.of(target).leftovers() == [], mode
            assert target.list_collection_names() == ["c"], mode
        assert "rolled back" in str(err.value)


# --------------------------------------------------------------------------
# lifetime: a server started for the dashboard or the CLI ends with its last client

# a client as the dashboard and the CLI are: connect() on the embedded default, then keep running
CLIENT = """
import signal, sys, time
# Ctrl-C as in a terminal, also when the test suite was started in the background (which ignores SIGINT)
signal.signal(signal.SIGINT, signal.default_int_handler)
from pathlib import Path
from backup_core.config import Settings
from backup_core.db import connect
with connect(Settings(data_dir=Path(sys.argv[1]))) as conn:
    print(conn.uri.split("?")[0], flush=True)
time.sleep(600)
"""
# auto-stop grace + one poll + shutdown, with room for a slow CI machine
STOP_WITHIN_S = embedded.AUTO_STOP_GRACE_S + 12


def _start_client(data_dir: Path) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen([PY, "-c", CLIENT, str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    line = _read_line(proc, timeout=60)
    assert line.startswith("mongodb://127.0.0.1:"), proc.stderr.read() if proc.poll() is not None else line
    info = read_server_file(data_dir)
    assert info is not None and pid_alive(info["pid"])
    return proc, info


def _end(proc: subprocess.Popen, sig: int) -> None:
    """End the client with ``sig`` (what it prints on the way out is shown if it does not end)."""
    proc.send_signal(sig)
    try:
        proc.wait(30)  # a loaded 2-core machine can take long to unwind an interpreter
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the client did not end on signal {sig}: {proc.stderr.read()[-2000:]}") from None


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_server_started_for_a_client_stops_when_the_client_ends(data_dir: Path, sig: int) -> None:
    client, info = _start_client(data_dir)
    try:
        assert "--auto-stop" in Path(f"/proc/{info['pid']}/cmdline").read_bytes().decode().split("\0")
        time.sleep(embedded.AUTO_STOP_GRACE_S + 1)
        assert pid_alive(info["pid"]), "the server must run as long as its client does"
        t0 = time.monotonic()
        _end(client, sig)
        _wait_gone(info["pid"], timeout=STOP_WITHIN_S)
        assert time.monotonic() - t0 < STOP_WITHIN_S
        assert read_server_file(data_dir) is None, "a clean stop removes server.json"
        assert "no dashboard or CLI process has used this server" in (data_dir / embedded.LOG_FILE).read_text()
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()


def test_a_server_started_by_a_cli_command_stops_after_it(data_dir: Path, tmp_path: Path) -> None:
    env = dict(_env(), EMBEDDED_DATA_DIR=str(data_dir), BACKUP_ROOT=str(tmp_path / "backups"))
    proc = subprocess.run([PY, "-m", "backup_core", "status", "--json"], capture_output=True, text=True,
                          timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["embedded"] is True
    info = read_server_file(data_dir)
    assert info is not None, "status started the embedded server for itself"
    _wait_gone(info["pid"], timeout=STOP_WITHIN_S)
    assert read_server_file(data_dir) is None


def test_the_server_stays_while_any_client_remains(data_dir: Path) -> None:
    first, info = _start_client(data_dir)
    second, again = _start_client(data_dir)
    try:
        assert again["pid"] == info["pid"], "the second client shares the first one's server"
        _end(first, signal.SIGKILL)
        time.sleep(embedded.AUTO_STOP_GRACE_S + 2)
        assert pid_alive(info["pid"]), "the second client still uses it"
        _end(second, signal.SIGTERM)
        _wait_gone(info["pid"], timeout=STOP_WITHIN_S)
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_a_server_started_by_hand_keeps_running_without_clients(data_dir: Path) -> None:
    server = subprocess.Popen([PY, "-m", "backup_core", "server", "--data", str(data_dir), "--no-seed"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        uri = _read_line(server, timeout=30).strip()
        client, info = _start_client(data_dir)
        assert info["pid"] == server.pid and info["uri"] == uri
        _end(client, signal.SIGKILL)
        time.sleep(embedded.AUTO_STOP_GRACE_S + 3)
        assert server.poll() is None, "an explicit server stops only when told to"
        assert embedded.ping(uri)
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=15)
        assert server.returncode == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_a_client_waits_while_an_unused_server_shuts_down(data_dir: Path) -> None:
    """The stopping server holds clients.lock exclusively until it has exited; a new client waits."""
    import fcntl

    data_dir.mkdir(parents=True)
    fd = os.open(data_dir / embedded.CLIENTS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="shutting down"):
            embedded.hold_client_lease(data_dir, timeout=0.5)
        assert time.monotonic() - t0 >= 0.5
        threading.Timer(0.3, fcntl.flock, (fd, fcntl.LOCK_UN)).start()
        embedded.hold_client_lease(data_dir, timeout=10)  # granted once the old server is gone
    finally:
        os.close(fd)
