"""The embedded default: a MongoDB-wire-compatible server, shared per data dir.

When no ``MONGODB_URI`` is configured, the product talks to a local
``mongoeco`` wire server (DESIGN.md section 5) with a real
``pymongo.MongoClient``, exactly as it talks to a real MongoDB. There is one
server per data dir, shared by the dashboard, the CLI and the scheduler:

- ``serve`` runs it in the foreground. It holds an exclusive ``flock`` on
  ``<data_dir>/server.pid.lock`` for its whole life (so two servers can never
  open the same SQLite file), and publishes ``<data_dir>/server.json``
  (pid, port, uri, started_at) only once it answers and any first-start demo
  data is in place.
- ``ensure_server`` finds that server or starts a detached one, serialised by
  ``<data_dir>/start.lock`` so that concurrent callers share one server.
- on a data dir's first start it seeds the demo data (``demo_data.seed_demo``).

Lifetime. A server that ``ensure_server`` started for the dashboard or the
CLI (``server --auto-stop``) stops by itself once no process uses it any
more; one started by hand (``python -m backup_core server``) runs until it is
stopped. Every process that calls ``ensure_server`` holds a *shared* ``flock``
on ``<data_dir>/clients.lock`` for the rest of its life (the spawner takes it
before spawning, so a new server never looks unused). An auto-stop server
polls for an *exclusive* lock on that file: when it gets one for
``AUTO_STOP_GRACE_S`` seconds in a row, no client is left. It then keeps the
exclusive lock, removes ``server.json`` and exits; a client that arrives
meanwhile waits for its shared lock until the old server is gone, finds no
``server.json`` and starts a new one. The kernel drops a dead process's locks,
so Ctrl-C, SIGTERM and SIGKILL of the last client all end the server, and a
recycled pid cannot keep it alive. (A shared lock is the one kind ``filelock``
does not offer, hence ``fcntl`` here.)

Files in a data dir: ``mongoeco.sqlite`` (the data), ``server.json``,
``server.pid.lock``, ``start.lock``, ``clients.lock``, ``server.log`` (output
of servers started by ``ensure_server``) and ``seeded`` (marker: demo data was
written once, never again, even after the admin deleted it).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # not POSIX: servers started for a client then run until stopped
    fcntl = None  # type: ignore[assignment]

from .demo_data import EQUIPMENT, SELECT_OPTIONS, seed_demo
from .errors import BackupError, DatabaseUnavailable, UsageError
from .fsutil import atomic_write
from .locks import process_alive
from .timeutil import now_iso

SQLITE_FILE = "mongoeco.sqlite"
SERVER_FILE = "server.json"
PID_LOCK_FILE = "server.pid.lock"
START_LOCK_FILE = "start.lock"
LOG_FILE = "server.log"
CLIENTS_FILE = "clients.lock"
# how long an auto-stop server waits without any client before it stops: a script running
# one CLI command after another keeps one server instead of starting one per command
AUTO_STOP_GRACE_S = 3.0
SEED_MARKER = "seeded"
HOST = "127.0.0.1"


# --------------------------------------------------------------------------
# serve: the server in the foreground


def serve(
    data_dir: Path | None,
    port: int = 0,
    memory: bool = False,
    seed_db: str | None = "equipment_db",
    on_ready: Callable[[str], None] | None = None,
    stop_event: threading.Event | None = None,
    auto_stop: bool = False,
) -> None:
    """Run the embedded server on 127.0.0.1 until SIGTERM/SIGINT or ``stop_event``.

    ``memory=True`` keeps everything in memory and touches no data dir (no
    lock, no ``server.json``): such a server is private to whoever started
    it. ``on_ready(uri)`` is called once the server answers and is seeded.
    Signals are only handled when called from the main thread; elsewhere use
    ``stop_event``. ``auto_stop=True`` (servers that ``ensure_server``
    starts) also stops once no process holds the data dir's client lease
    (module docstring).
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"invalid port {port}: use 0 (any free port) to 65535")
    if memory:
        if auto_stop:
            raise UsageError("--auto-stop needs a data dir: a memory server belongs to whoever started it")
        asyncio.run(_serve_async(None, port, True, seed_db, on_ready, stop_event))
        return
    if data_dir is None:
        raise BackupError("the embedded server needs a data dir (or memory=True)")
    data_dir = Path(data_dir).absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(f"cannot create embedded data dir {data_dir}: {exc.strerror}") from None
    lock = _acquire_server_lock(data_dir)
    idle = _IdleWatch(data_dir) if auto_stop and fcntl is not None else None
    try:
        asyncio.run(_serve_async(data_dir, port, False, seed_db, on_ready, stop_event, idle))
    finally:
        _remove_own_server_file(data_dir)
        lock.release()
        if idle is not None:
            idle.close()  # last: a client waiting for its lease now finds no server.json and no lock


async def _serve_async(
    data_dir: Path | None,
    port: int,
    memory: bool,
    seed_db: str | None,
    on_ready: Callable[[str], None] | None,
    stop_event: threading.Event | None,
    idle: "_IdleWatch | None" = None,
) -> None:
    from mongoeco.engines import MemoryEngine, SQLiteEngine
    from mongoeco.wire import AsyncMongoEcoProxyServer

    from . import server_fixes

    server_fixes.apply()  # e.g. inserts in one batch, not O(n^2); stats of every BSON type
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        # The loop removes these handlers again when asyncio.run closes it.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    where = "memory" if memory else str(data_dir)
    engine = MemoryEngine() if memory else SQLiteEngine(str(data_dir / SQLITE_FILE))
    server = AsyncMongoEcoProxyServer(engine=engine, host=HOST, port=port)
    address = await _start(server, port, where)
    try:
        uri = f"mongodb://{HOST}:{address.port}/?directConnection=true"
        await _seed_and_publish(data_dir, seed_db, uri, address.port)
        _log(f"embedded server ready at {uri} (data: {where}, pid {os.getpid()})")
        if on_ready is not None:
            on_ready(uri)
        await _until_stopped(stop, stop_event, idle)
        _log("embedded server shutting down")
    finally:
        if not memory:
            _remove_own_server_file(data_dir)
        await server.close()


async def _start(server, port: int, where: str):
    """Start listening; its address, or a ``BackupError`` that says why it cannot."""
    try:
        return await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BackupError(f"port {port} on {HOST} is already in use; pick another or use --port 0") from None
        raise BackupError(f"embedded server could not start ({where}): {exc}") from None
    except Exception as exc:  # e.g. sqlite3.OperationalError for an unusable file
        raise BackupError(f"embedded server could not start ({where}): {type(exc).__name__}: {exc}") from None


async def _seed_and_publish(data_dir: Path | None, seed_db: str | None, uri: str, port: int) -> None:
    """Seed the demo data on a first start, then publish ``server.json`` (a data dir; None: memory)."""
    memory = data_dir is None
    if seed_db and (memory or not (data_dir / SEED_MARKER).exists()):
        # Seed through the wire like any client would, before publishing
        # server.json, so nobody ever sees half-written demo data.
        counts = await asyncio.to_thread(_seed_first_start, uri, seed_db)
        if not memory:
            atomic_write(data_dir / SEED_MARKER, json.dumps(
                {"database": seed_db, "counts": counts, "at": now_iso()}) + "\n")
        _log(f"seeded {seed_db}: {counts}")
    if not memory:
        atomic_write(data_dir / SERVER_FILE, json.dumps({
            "pid": os.getpid(), "port": port, "uri": uri, "started_at": now_iso(),
        }) + "\n")


async def _until_stopped(stop: asyncio.Event, stop_event: threading.Event | None,
                         idle: "_IdleWatch | None") -> None:
    """Wait for a signal, ``stop_event``, or (``idle``) no client using the server any more."""
    # Polling keeps stop_event cheap to honour without a thread that
    # could outlive the loop.
    next_idle_check = 0.0
    while not stop.is_set():
        if stop_event is not None and stop_event.is_set():
            break
        if idle is not None and time.monotonic() >= next_idle_check:
            next_idle_check = time.monotonic() + 0.5
            if idle.unused():
                _log(f"no dashboard or CLI process has used this server for {idle.grace:g} s")
                break
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.2)
        except TimeoutError:
            pass


def _seed_first_start(uri: str, db_name: str) -> dict[str, int]:
    import pymongo

    client = pymongo.MongoClient(uri, appname="backup_core-seed", serverSelectionTimeoutMS=5000)
    try:
        db = client[db_name]
        # A data dir that already holds these collections (e.g. seeding was
        # interrupted after the data was written but before the marker) must
        # not get a second copy.
        existing = {name: db[name].estimated_document_count()
                    for name in db.list_collection_names() if name in (EQUIPMENT, SELECT_OPTIONS)}
        if any(existing.values()):
            return existing
        return seed_demo(db)
    finally:
        client.close()


def _acquire_server_lock(data_dir: Path) -> FileLock:
    """Take the lifetime lock of a data dir, or explain who holds it."""
    lock = FileLock(str(data_dir / PID_LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        info = read_server_file(data_dir) or {}
        who = f" (pid {info['pid']}, {info.get('uri')})" if "pid" in info else ""
        raise BackupError(
            f"another embedded server is already running on data dir {data_dir}{who}",
            hint="connect to it, or stop it first",
        ) from None
    return lock


def _server_lock_held(data_dir: Path) -> bool:
    """True while some process (maybe still starting up) serves this data dir."""
    path = data_dir / PID_LOCK_FILE
    if not path.exists():
        return False
    probe = FileLock(str(path), thread_local=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def _remove_own_server_file(data_dir: Path) -> None:
    info = read_server_file(data_dir)
    if info is not None and info.get("pid") == os.getpid():
        try:
            (data_dir / SERVER_FILE).unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------
# the client lease: who still uses a server that was started for them


class _IdleWatch:
    """The server's side of the client lease (module docstring)."""

    def __init__(self, data_dir: Path, grace: float = AUTO_STOP_GRACE_S) -> None:
        self.grace = grace
        self._fd: int | None = os.open(data_dir / CLIENTS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._idle_since: float | None = None

    def unused(self) -> bool:
        """True once no client has held the lease for ``grace`` seconds.

        From then on this process keeps the exclusive lock until it exits, so
        no client can start using the server while it shuts down.
        """
        if self._fd is None:
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._idle_since = None  # some client holds its shared lock
            return False
        except OSError as exc:  # a filesystem without flock: clients cannot register either
            _log(f"cannot watch {CLIENTS_FILE} ({exc.strerror}); this server runs until it is stopped")
            self.close()
            return False
        now = time.monotonic()
        if self._idle_since is None:
            self._idle_since = now
        if now - self._idle_since >= self.grace:
            return True
        fcntl.flock(self._fd, fcntl.LOCK_UN)  # not yet: let clients in while waiting
        return False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# data dir -> the descriptor holding this process's shared lock on its clients.lock
_leases: dict[str, int] = {}
_leases_lock = threading.Lock()


def hold_client_lease(data_dir: Path, timeout: float = 30) -> None:
    """Mark this process as a user of ``data_dir``'s server until it exits (once per process).

    Waits while a server that found itself unused is shutting down (it holds
    the exclusive lock until it has exited).
    """
    if fcntl is None:
        return
    key = str(Path(data_dir).absolute())
    with _leases_lock:
        if key in _leases:
            return
        try:
            fd = os.open(Path(key) / CLIENTS_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot open {Path(key) / CLIENTS_FILE}: {exc.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            except OSError:  # a filesystem without flock: the server cannot watch either, so it stays up
                os.close(fd)
                return
            if time.monotonic() >= deadline:
                os.close(fd)
                raise DatabaseUnavailable(
                    f"the embedded server for {key} is shutting down and did not finish within {timeout:g} s")
            time.sleep(0.05)
        _leases[key] = fd  # held, deliberately, until the process exits


# --------------------------------------------------------------------------
# ensure_server: find or start the shared server of a data dir


def read_server_file(data_dir: Path) -> dict[str, Any] | None:
    """The discovery file of a data dir, or None if absent or unreadable."""
    try:
        info = json.loads((Path(data_dir) / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def ensure_server(data_dir: Path, timeout: float = 30, *, db_name: str | None = None) -> str:
    """Return the URI of the embedded server of ``data_dir``, starting it if needed.

    Safe to call from several processes at once: ``start.lock`` serialises the
    check-then-spawn, and the server's own flock makes a second server on the
    same dir impossible anyway. ``db_name`` names the database a newly started
    server seeds on the data dir's first start (default: the server's
    ``MONGODB_DB`` or ``equipment_db``). The calling process becomes one of
    the server's clients for the rest of its life: a server started here
    stops a few seconds after the last of them has exited.
    """
    data_dir = Path(data_dir).absolute()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseUnavailable(f"cannot create embedded data dir {data_dir}: {exc.strerror}") from None
    # before looking for a server: one that saw no client and is stopping is waited for here
    hold_client_lease(data_dir, timeout)
    uri = _live_uri(data_dir)
    if uri:  # the common case needs no lock
        return uri
    deadline = time.monotonic() + timeout
    try:
        with FileLock(str(data_dir / START_LOCK_FILE), timeout=timeout):
            uri = _live_uri(data_dir)
            if uri:
                return uri
            return _start_and_wait(data_dir, db_name, deadline)
    except Timeout:
        raise DatabaseUnavailable(
            f"embedded server for {data_dir} did not become available within {timeout:g} s "
            f"(another process is starting it)") from None


def _live_uri(data_dir: Path) -> str | None:
    info = read_server_file(data_dir)
    if not info or not isinstance(info.get("pid"), int) or not isinstance(info.get("uri"), str):
        return None
    # A dead pid means the port may now belong to someone else: never ping it.
    if not process_alive(info["pid"]) or not ping(info["uri"], timeout_ms=1500):
        return None
    return info["uri"]


def ping(uri: str, timeout_ms: int = 1500) -> bool:
    """True if a MongoDB server answers ``ping`` at ``uri`` within the timeout."""
    import pymongo
    from pymongo.errors import PyMongoError

    try:
        client = pymongo.MongoClient(
            uri, appname="backup_core", serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms, socketTimeoutMS=max(timeout_ms, 5000))
    except (PyMongoError, ValueError, TypeError):
        return False
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def start_memory_server(cwd: Path | None = None) -> tuple[subprocess.Popen, str]:
    """A private server on the memory engine, unseeded, on a free port: (process, URI).

    For tests and benchmarks; the caller stops the process.
    """
    proc = subprocess.Popen(
        [sys.executable, "-m", "backup_core", "server", "--memory", "--no-seed", "--port", "0", "--json"],
        cwd=cwd or Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise DatabaseUnavailable(f"embedded server did not start: {proc.stderr.read()[-2000:]}")
    return proc, json.loads(line)["uri"]


def _spawn_server(data_dir: Path, db_name: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "backup_core"]
    if db_name:
        cmd += ["--db", db_name]
    cmd += ["server", "--data", str(data_dir), "--port", "0", "--auto-stop"]
    # its cwd stays the caller's, so relative settings such as .streamlit/secrets.toml mean the same
    env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
    with open(data_dir / LOG_FILE, "ab") as log:
        log.write(f"--- {now_iso()} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, close_fds=True)
    # Reap it whenever it exits, so a long-lived caller (the dashboard) does
    # not keep a zombie that looks alive to pid_alive's kill(pid, 0).
    threading.Thread(target=proc.wait, name=f"reap-embedded-{proc.pid}", daemon=True).start()
    return proc


def _start_and_wait(data_dir: Path, db_name: str | None, deadline: float) -> str:
    """Spawn a server unless one is starting already, then wait for its server.json."""
    log_offset = _file_size(data_dir / LOG_FILE)
    proc: subprocess.Popen | None = None
    spawned = 0
    while True:
        uri = _live_uri(data_dir)
        if uri:
            return uri
        if proc is not None and proc.poll() is not None:
            if not _server_lock_held(data_dir):
                raise DatabaseUnavailable(
                    f"embedded server for {data_dir} exited with status {proc.returncode} during start-up: "
                    f"{_log_tail(data_dir, log_offset)}",
                    hint=f"full log: {data_dir / LOG_FILE}")
            proc = None  # lost a race against a server started by hand: wait for that one
        # The lock also reads as held for a moment after its owner was
        # killed (until its last thread is gone), so re-check on every turn
        # instead of deciding once.
        if proc is None and spawned < 3 and not _server_lock_held(data_dir):
            proc = _spawn_server(data_dir, db_name)
            spawned += 1
        if time.monotonic() >= deadline:
            if proc is not None and proc.poll() is None:
                proc.terminate()  # an error must not leave a half-started server behind
            raise DatabaseUnavailable(
                f"embedded server for {data_dir} did not start in time: {_log_tail(data_dir, log_offset)}",
                hint=f"full log: {data_dir / LOG_FILE}")
        time.sleep(0.1)


def _log_tail(data_dir: Path, offset: int, lines: int = 4) -> str:
    try:
        with open(data_dir / LOG_FILE, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    tail = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("--- ")][-lines:]
    msg = " | ".join(tail) or "(log is empty)"
    return msg if len(msg) <= 600 else "..." + msg[-600:]


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log(message: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    print(f"{now_iso()} {message}", file=stream, flush=True)
