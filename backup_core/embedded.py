"""The embedded default: a MongoDB-wire-compatible server and its demo data.

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
- ``seed_demo`` writes the deterministic equipment-management demo data.

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
import datetime as dt
import errno
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TextIO

from filelock import FileLock, Timeout

try:
    import fcntl
except ImportError:  # not POSIX: servers started for a client then run until stopped
    fcntl = None  # type: ignore[assignment]

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

EQUIPMENT = "Equipment"
SELECT_OPTIONS = "Equipment_select_options"


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

    server_fixes.apply()  # e.g. inserts in one batch, not O(n^2)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        # The loop removes these handlers again when asyncio.run closes it.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)

    where = "memory" if memory else str(data_dir)
    engine = MemoryEngine() if memory else SQLiteEngine(str(data_dir / SQLITE_FILE))
    server = AsyncMongoEcoProxyServer(engine=engine, host=HOST, port=port)
    try:
        address = await server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BackupError(f"port {port} on {HOST} is already in use; pick another or use --port 0") from None
        raise BackupError(f"embedded server could not start ({where}): {exc}") from None
    except Exception as exc:  # e.g. sqlite3.OperationalError for an unusable file
        raise BackupError(f"embedded server could not start ({where}): {type(exc).__name__}: {exc}") from None
    try:
        uri = f"mongodb://{HOST}:{address.port}/?directConnection=true"
        if seed_db and (memory or not (data_dir / SEED_MARKER).exists()):
            # Seed through the wire like any client would, before publishing
            # server.json, so nobody ever sees half-written demo data.
            counts = await asyncio.to_thread(_seed_first_start, uri, seed_db)
            if not memory:
                _write_atomic(data_dir / SEED_MARKER, json.dumps(
                    {"database": seed_db, "counts": counts, "at": _utc_now_iso()}) + "\n")
            _log(f"seeded {seed_db}: {counts}")
        if not memory:
            _write_atomic(data_dir / SERVER_FILE, json.dumps({
                "pid": os.getpid(), "port": address.port, "uri": uri, "started_at": _utc_now_iso(),
            }) + "\n")
        _log(f"embedded server ready at {uri} (data: {where}, pid {os.getpid()})")
        if on_ready is not None:
            on_ready(uri)
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
        _log("embedded server shutting down")
    finally:
        if not memory:
            _remove_own_server_file(data_dir)
        await server.close()


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
        log.write(f"--- {_utc_now_iso()} starting: {' '.join(cmd)}\n".encode())
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


def _write_atomic(path: Path, text: str) -> None:
    atomic_write(path, text)


def _utc_now_iso() -> str:
    return now_iso()


def _log(message: str, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    print(f"{_utc_now_iso()} {message}", file=stream, flush=True)


# --------------------------------------------------------------------------
# seed_demo: deterministic equipment-management demo data

_CATEGORIES = [
    ("microscope", "Microscope"), ("centrifuge", "Centrifuge"), ("balance", "Balance"),
    ("pipette", "Pipette"), ("incubator", "Incubator"), ("freezer", "Freezer"),
    ("spectrometer", "Spectrometer"), ("laptop", "Laptop"), ("printer_3d", "3D printer"),
    ("power_tool", "Power tool"),
]
_STATUSES = [
    ("in_service", "In service"), ("in_repair", "In repair"), ("on_loan", "On loan"),
    ("reserved", "Reserved"), ("retired", "Retired"), ("lost", "Lost"),
]
_CONDITIONS = [("new", "New"), ("good", "Good"), ("fair", "Fair"), ("poor", "Poor"), ("broken", "Broken")]
_BUILDINGS = [
    ("A", "Bâtiment A – Chimie"), ("B", "Building B – Biology"), ("C", "Gebäude C – Physik"),
    ("D", "D棟 – 材料科学"), ("E", "Edificio E – Taller"), ("W", "Warehouse"),
]
_DEPARTMENTS = [
    ("chem", "Chemistry"), ("bio", "Biology"), ("phys", "Physics"), ("mat", "Materials science"),
    ("it", "IT services"), ("ws", "Workshop"), ("med", "Médecine"), ("admin", "Administration"),
]
_MAINTENANCE = [
    ("calibration", "Calibration"), ("inspection", "Safety inspection"), ("repair", "Repair"),
    ("cleaning", "Cleaning"), ("firmware", "Firmware update"),
]
_UNITS = [("pcs", "pieces"), ("set", "set"), ("box", "box"), ("kit", "kit"), ("pair", "pair")]

_MAKERS = {
    "microscope": [("Zeiss", "Axio"), ("Olympus", "CX"), ("Nikon", "Eclipse"), ("Keyence 基恩士", "VHX")],
    "centrifuge": [("Eppendorf", "5425"), ("Thermo Fisher", "Sorvall"), ("Hettich", "Rotina")],
    "balance": [("Mettler-Toledo", "XPR"), ("Sartorius", "Cubis"), ("Ohaus", "Explorer")],
    "pipette": [("Eppendorf", "Research plus"), ("Gilson", "Pipetman"), ("Sartorius", "Tacta")],
    "incubator": [("Binder", "CB"), ("Memmert", "IN"), ("Thermo Fisher", "Heracell")],
    "freezer": [("Liebherr", "LGT"), ("PHCbi", "VIP ECO"), ("Arctiko", "ULUF")],
    "spectrometer": [("Agilent", "Cary"), ("Shimadzu 島津", "UV"), ("Bruker", "Alpha")],
    "laptop": [("Lenovo", "ThinkPad T"), ("Dell", "Latitude"), ("Apple", "MacBook Pro")],
    "printer_3d": [("Prusa", "MK"), ("Ultimaker", "S"), ("Bambu Lab", "X1")],
    "power_tool": [("Bosch", "GSR"), ("Makita", "DHP"), ("Hilti", "SF"), ("Festool", "T")],
}
_NOUNS = {
    "microscope": ["microscope", "Mikroskop", "顕微鏡"], "centrifuge": ["centrifuge", "Centrifugeuse réfrigérée"],
    "balance": ["analytical balance", "Präzisionswaage"], "pipette": ["pipette set 🧪", "multichannel pipette"],
    "incubator": ["CO₂ incubator", "incubateur"], "freezer": ["-80 °C freezer", "Tiefkühlschrank"],
    "spectrometer": ["UV-Vis spectrometer", "分光光度計"], "laptop": ["laptop 💻", "portátil"],
    "printer_3d": ["3D printer", "imprimante 3D"], "power_tool": ["cordless drill", "Akku-Schrauber 🔧"],
}
_TAGS = ["shared", "critical", "calibrated", "GMP", "portable", "loaner", "fragile", "höhere Priorität",
         "需要培训", "🔥 hot", "teaching", "reserved-weekends"]
_PEOPLE = ["Ana Müller", "José Álvarez", "Zoë Chen", "Łukasz Nowak", "佐藤 花子", "Ravi Iyer",
           "Siobhán O'Neill", "Jean-François Côté", None]
_NOTES = [
    "Bench 3, next to the fume hood.",
    "Handle with care — fragile optics.",
    "Bought with grant ANR-21-CE45, see invoice #4411.",
    "Voir le manuel d'utilisation (français).",
    "需要每月校准一次。",
    "Works fine 👍",
]
_MAINT_NOTES = ["OK", "Replaced fuse", "Recalibrated, deviation 0.02 %", "Filter changed; next in 6 months",
                "Nettoyage complet", "Firmware 2.4.1 → 2.5.0", ""]


def _oid(rng: random.Random, when: dt.datetime, counter: int) -> Any:
    """A reproducible ObjectId whose timestamp part is ``when``."""
    from bson import ObjectId

    seconds = int(when.replace(tzinfo=dt.timezone.utc).timestamp())
    return ObjectId(struct.pack(">I", seconds) + rng.randbytes(5) + struct.pack(">I", counter)[1:])


def _ms(value: dt.datetime) -> dt.datetime:
    """Truncate to milliseconds, as BSON dates hold no more."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _demo_select_options(rng: random.Random) -> list[dict[str, Any]]:
    base = dt.datetime(2019, 3, 1, 9, 0, 0)
    groups = [("category", _CATEGORIES), ("status", _STATUSES), ("condition", _CONDITIONS),
              ("building", _BUILDINGS), ("department", _DEPARTMENTS), ("maintenance_type", _MAINTENANCE),
              ("unit", _UNITS)]
    docs: list[dict[str, Any]] = []
    for field, values in groups:
        for order, (value, label) in enumerate(values, start=1):
            docs.append({
                "_id": _oid(rng, base + dt.timedelta(minutes=len(docs)), len(docs)),
                "field": field,
                "value": value,
                "label": label,
                "order": order,
                # A few retired choices stay for old records, as real apps keep them.
                "active": not (field == "status" and value == "lost") and not (field == "unit" and value == "pair"),
            })
    return docs


def _demo_equipment(rng: random.Random, count: int = 150) -> list[dict[str, Any]]:
    from bson import Decimal128, Int64

    docs: list[dict[str, Any]] = []
    start = dt.datetime(2015, 1, 1)
    for i in range(1, count + 1):
        cat = rng.choice(_CATEGORIES)[0]
        maker, series = rng.choice(_MAKERS[cat])
        model = f"{series} {rng.randint(100, 999)}{rng.choice(['', 'X', 'i', ' Pro'])}"
        purchased = _ms(start + dt.timedelta(seconds=rng.randint(0, 10 * 365 * 86400),
                                             microseconds=rng.randint(0, 999_999)))
        status = rng.choices([s for s, _ in _STATUSES], weights=[70, 8, 10, 5, 6, 1])[0]
        building, _ = rng.choice(_BUILDINGS)
        doc: dict[str, Any] = {
            "_id": _oid(rng, purchased, i),
            "asset_id": f"EQ-{i:05d}",
            "name": f"{maker} {rng.choice(_NOUNS[cat])}",
            "category": cat,
            "status": status,
            "manufacturer": maker,
            "model": model,
            "serial": f"SN-{rng.getrandbits(40):010X}",
            "purchase_date": purchased,
            "price": Decimal128(Decimal(rng.randint(1_500, 8_500_000)).scaleb(-2)),
            "weight_kg": round(rng.uniform(0.05, 420.0), 3),
            "quantity": rng.choice([1, 1, 1, 1, 2, 3, 5, 10, 24]),
            # Operating counter in milliseconds: beyond int32, always Int64.
            "usage_ms": Int64(rng.randint(2**33, 2**45)),
            "calibration_required": cat in ("balance", "pipette", "spectrometer", "microscope"),
            "tags": rng.sample(_TAGS, rng.choice([0, 1, 1, 2, 2, 3, 4])),
            "location": {
                "building": building,
                "room": f"{building}{rng.randint(0, 4)}.{rng.randint(1, 40):02d}",
                "coordinates": [round(48.70 + rng.uniform(0, 0.05), 6), round(2.10 + rng.uniform(0, 0.08), 6)],
            },
            "assigned_to": rng.choice(_PEOPLE),  # None = unassigned, kept as null
            "department": rng.choice(_DEPARTMENTS)[0],
        }
        maintenance = []
        when = purchased
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            when = _ms(when + dt.timedelta(days=rng.randint(30, 400), seconds=rng.randint(0, 86399),
                                           milliseconds=rng.randint(0, 999)))
            entry: dict[str, Any] = {
                "date": when,
                "type": rng.choice(_MAINTENANCE)[0],
                "technician": rng.choice(_PEOPLE[:-1]),
                "notes": rng.choice(_MAINT_NOTES),
            }
            if rng.random() < 0.4:
                entry["cost"] = Decimal128(Decimal(rng.randint(0, 250_000)).scaleb(-2))
            maintenance.append(entry)
        doc["maintenance"] = maintenance
        if rng.random() < 0.7:  # optional: absent on about 30 % of documents
            doc["warranty_until"] = _ms(purchased + dt.timedelta(days=365 * rng.choice([1, 2, 3, 5])))
        roll = rng.random()
        if roll < 0.35:
            doc["notes"] = rng.choice(_NOTES)
        elif roll < 0.45:
            doc["notes"] = None
        docs.append(doc)

    # Hand-picked edge cases a backup format has to survive.
    docs[6]["notes"] = 'Returned by "Lab 2", cable missing,\nsee ticket #88; owner said: "fine, use it"'
    docs[13]["notes"] = "=SUM(A1:A9) was typed into the inventory sheet by mistake"
    docs[20]["notes"] = "+33 1 23 45 67 89 (supplier hotline)"
    docs[27]["serial"] = ""  # unknown serial: empty string, not null, not missing
    docs[34]["tags"] = []
    docs[41]["name"] = "Spectromètre à réseau — 分光器 🔬"
    # Documents imported from an older app version carry another field order.
    for doc in docs[-3:]:
        doc["status"] = doc.pop("status")
        doc["category"] = doc.pop("category")
    return docs


def seed_demo(db: Any) -> dict[str, int]:
    """Write the demo data into ``db`` (a ``pymongo.database.Database``).

    Deterministic: the same call always writes the same documents, ids
    included. Collections are expected to be empty (the unique index on
    ``asset_id`` rejects a second copy). One ``insert_many`` per collection,
    because the embedded server's insert cost grows quadratically with the
    batch count.
    """
    import pymongo

    rng = random.Random(20240601)
    options = _demo_select_options(rng)
    equipment = _demo_equipment(rng)
    db[EQUIPMENT].create_index([("asset_id", pymongo.ASCENDING)], unique=True, name="asset_id_unique")
    db[SELECT_OPTIONS].create_index([("field", pymongo.ASCENDING), ("value", pymongo.ASCENDING)],
                                    unique=True, name="field_value_unique")
    db[EQUIPMENT].insert_many(equipment, ordered=True)
    db[SELECT_OPTIONS].insert_many(options, ordered=True)
    return {EQUIPMENT: len(equipment), SELECT_OPTIONS: len(options)}
