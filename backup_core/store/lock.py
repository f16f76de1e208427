"""The lock of a repository: lock files on the backend, one registry per process (restic's lock files).

A lock file ``locks/<mode>-<holder>-<n>`` names its holder (host, pid, the
pid's start time, the operation) and is never rewritten: holding a lock means
creating a new file every ``ttl / 3`` seconds and removing the previous one, so
a lock file's age, measured by the storage's own clock, says when its holder
last proved it was alive. Modes:

- ``exclusive`` (clean-up, delete): nothing else at the same time;
- ``write`` (backup, restore, import, copy into, undo, archive): one writer,
  readers allowed;
- ``read`` (drill, export, copy from): any number, writers allowed; only
  ``exclusive`` waits for them (clean-up must not delete what they read).

Taking a lock: remove stale lock files, create ours, list again; if another
holder conflicts, remove ours, wait a random moment and try again until the
timeout (two takers that see each other both back off, so two can never both
hold a conflicting lock). A lock file is stale when it was not renewed within
``ttl`` (``BACKUP_LOCK_TTL_SECONDS``, default 300) or its process is seen dead
on this host (a different start time means the pid was reused).

Losing it: when renewing finds our file gone (another process found it stale:
this one was frozen, suspended or cut off) or a conflicting holder present,
the lock is *lost*: every later write of the repository, and every
``check()`` the operations make before a step that changes something, raises
``LockLost`` and the whole operation is cancelled, not only its last step.
``check()`` costs no request while the last renewal is younger than
``ttl / 3`` (the clock used, ``CLOCK_BOOTTIME``, keeps counting while the
process is stopped or the machine sleeps); otherwise it renews first.

One registry per process: every repository object of the same root in this
process shares one state, so two instances (the dashboard's scheduler thread
and a click) never both hold it, and a thread re-entering (a restore taking
its safety backup) joins the lock it holds.
"""

from __future__ import annotations

import json
import random
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import LockBusy, LockLost, StorageError
from ..locks import owner_record, process_alive
from ..timeutil import now_iso
from .backend import Backend

MODES = ("read", "write", "exclusive")
DEFAULT_TTL_S = 300.0
MIN_TTL_S = 1.0
_CONFLICTS = {"read": {"exclusive"}, "write": {"write", "exclusive"}, "exclusive": set(MODES)}
_NAME_RE = re.compile(r"^(read|write|exclusive)-([0-9a-f]{16})-(\d+)$")


def lock_ttl() -> float:
    """``BACKUP_LOCK_TTL_SECONDS``: how long a lock lives without renewal (a positive number)."""
    from ..config import lock_ttl_seconds

    return lock_ttl_seconds()


def _clock() -> float:
    # counts while the process is stopped (SIGSTOP) and while the machine is suspended
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


@dataclass
class _Held:
    """One lock file this process holds for one mode."""

    mode: str
    holder: str
    operation: str
    ttl: float
    n: int = 0
    renewed: float = 0.0
    count: int = 0  # acquisitions of this mode in this process

    @property
    def name(self) -> str:
        return f"locks/{self.mode}-{self.holder}-{self.n}"


@dataclass
class _State:
    """This process's lock on one root (shared by every repository object of that root)."""

    guard: threading.Condition = field(default_factory=lambda: threading.Condition(threading.RLock()))
    held: dict[str, _Held] = field(default_factory=dict)
    owners: dict[str, dict[int, int]] = field(default_factory=dict)  # mode -> thread id -> depth
    pending: set = field(default_factory=set)  # modes being acquired by a thread of this process
    lost: str | None = None
    renewer: threading.Thread | None = None
    io: threading.Lock = field(default_factory=threading.Lock)  # one renewal at a time


_REGISTRY: dict[str, _State] = {}
_REGISTRY_GUARD = threading.Lock()


def _state_for(backend: Backend) -> _State:
    with _REGISTRY_GUARD:
        st = _REGISTRY.get(backend.identity)
        if st is None:
            st = _REGISTRY[backend.identity] = _State()
        return st


class RepositoryLock:
    """The lock of one repository (see the module docstring); ``prefix`` separates independent locks."""

    def __init__(self, backend: Backend, prefix: str = "locks/") -> None:
        self.backend = backend
        self.prefix = prefix
        self._state = _state_for(_Prefixed(backend, prefix))

    # ---- in-process part
    def _in_process_conflict(self, mode: str, me: int) -> bool:
        for other, threads in self._state.owners.items():
            if other in _CONFLICTS[mode] and any(t != me and d > 0 for t, d in threads.items()):
                return True
        return False

    def _covered(self, mode: str, me: int) -> str | None:
        """A mode this thread holds already that covers ``mode`` (re-entry)."""
        order = MODES.index(mode)
        for held_mode, threads in self._state.owners.items():
            if threads.get(me, 0) > 0 and MODES.index(held_mode) >= order:
                return held_mode
        return None

    @contextmanager
    def hold(self, operation: str, timeout: float, mode: str = "write") -> Iterator[None]:
        if mode not in MODES:
            raise ValueError(mode)
        st = self._state
        me = threading.get_ident()
        deadline = time.monotonic() + max(timeout, 0.0)
        with st.guard:
            taken = self._covered(mode, me)
            joined = taken is not None
            if joined:
                self.check()  # a re-entry must not start anything on a lost lock
            else:
                taken = mode
                while self._in_process_conflict(mode, me) or mode in st.pending:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        ops = sorted({h.operation for h in st.held.values()}) or ["another operation"]
                        raise self._busy(operation, timeout, f"{', '.join(ops)} (in this process)")
                    st.guard.wait(min(left, 0.2))
                if mode not in st.held:
                    if not st.held:
                        st.lost = None
                    st.pending.add(mode)
                    try:
                        self._acquire(mode, operation, timeout, deadline)
                    finally:
                        st.pending.discard(mode)
                        st.guard.notify_all()
                st.held[mode].count += 1
            threads = st.owners.setdefault(taken, {})
            threads[me] = threads.get(me, 0) + 1
        try:
            yield
        finally:
            with st.guard:
                st.owners[taken][me] -= 1
                if not joined:
                    held = st.held[mode]
                    held.count -= 1
                    if held.count == 0:
                        self._release(held)
                st.guard.notify_all()

    # ---- on the backend
    def _files(self) -> list[tuple[str, str, int, float]]:
        """(mode, holder, n, age) of every lock file."""
        out = []
        for e in self.backend.list(self.prefix):
            m = _NAME_RE.match(e.name[len(self.prefix):])
            if m:
                out.append((m.group(1), m.group(2), int(m.group(3)), e.age, e.name))
        return out  # type: ignore[return-value]

    def _record(self, name: str) -> dict:
        data = self.backend.read(name, 4096)
        try:
            record = json.loads(data or b"{}")
        except ValueError:
            record = {}
        return record if isinstance(record, dict) else {}

    def _stale(self, name: str, age: float, ours: set[str]) -> bool:
        """Not renewed in time, or its process is gone (a holder of this process that the registry
        does not know is a leftover of an earlier run of this pid: gone too)."""
        record = self._record(name)
        ttl = record.get("ttl")
        ttl = float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) and ttl > 0 else lock_ttl()
        if age > ttl:
            return True
        me = owner_record()
        if record.get("host") == me["host"] and record.get("pid") == me["pid"]:
            return record.get("holder") not in ours
        return not process_alive(record.get("pid"), record.get("pid_started"), record.get("host"))

    def _conflicting(self, mode: str, ours: set[str]) -> list[tuple[str, float]]:
        """Live lock files of other holders that conflict with ``mode`` (stale ones are removed)."""
        out = []
        for other_mode, holder, _n, age, name in self._files():  # type: ignore[misc]
            if holder in ours or other_mode not in _CONFLICTS[mode]:
                continue
            if self._stale(name, age, ours):
                self.backend.remove(name)
                continue
            out.append((name, age))
        return out

    def _body(self, held: _Held) -> bytes:
        return json.dumps({**owner_record(), "holder": held.holder, "mode": held.mode,
                           "operation": held.operation, "time": now_iso(), "ttl": held.ttl}).encode()

    def _acquire(self, mode: str, operation: str, timeout: float, deadline: float) -> None:
        st = self._state
        held = _Held(mode, secrets.token_hex(8), operation, lock_ttl())
        ours = {h.holder for h in st.held.values()} | {held.holder}
        while True:
            others = self._conflicting(mode, ours)
            if not others:
                self.backend.save(held.name, self._body(held))
                held.renewed = _clock()
                if not self._conflicting(mode, ours):
                    break
                self.backend.remove(held.name)  # someone else took it at the same moment: both back off
                held.n += 1
            if time.monotonic() >= deadline:
                raise self._busy(operation, timeout, self._holders_text())
            st.guard.wait(random.uniform(0.05, 0.3))  # lets this process's other threads renew and release
        st.held[mode] = held
        if st.renewer is None or not st.renewer.is_alive():
            st.renewer = threading.Thread(target=self._renew_loop, daemon=True, name="repository-lock")
            st.renewer.start()

    def _release(self, held: _Held) -> None:
        st = self._state
        with st.io:
            st.held.pop(held.mode, None)
            try:
                self.backend.remove(held.name)
            except StorageError:
                pass  # it goes stale by itself; the next taker removes it

    def _renew(self, held: _Held) -> None:
        """Prove we are alive: our file must still be there and no conflicting holder may exist."""
        st = self._state
        with st.io:
            if st.held.get(held.mode) is not held or st.lost:
                return  # released (or lost) meanwhile
            ours = {h.holder for h in st.held.values()}
            names = {name for (_m, holder, _n, _age, name) in self._files() if holder == held.holder}  # type: ignore[misc]
            if held.name not in names:
                self._lose(f"its lock file {held.name} is gone: another process took the lock over after this "
                           f"one did not renew it for {held.ttl:g}s")
                return
            old = held.name
            held.n += 1
            self.backend.save(held.name, self._body(held))
            started = _clock()
            if self._conflicting(held.mode, ours):
                self.backend.remove(held.name)
                self._lose("another process holds a conflicting lock")
                return
            self.backend.remove(old)
            held.renewed = started

    def _lose(self, why: str) -> None:
        st = self._state
        st.lost = why
        for h in list(st.held.values()):
            try:
                self.backend.remove(h.name)
            except StorageError:
                pass

    def _renew_loop(self) -> None:
        st = self._state
        while True:
            with st.guard:
                if not st.held:
                    st.renewer = None
                    return
                ttl = min(h.ttl for h in st.held.values())
            time.sleep(min(ttl / 6, 5.0))
            with st.guard:
                due = [h for h in st.held.values() if _clock() - h.renewed >= h.ttl / 3]
            for held in due:
                if st.lost:
                    break
                try:
                    self._renew(held)
                except StorageError:
                    continue  # a transient failure: the next attempt may work, the ttl has room

    # ---- for the operations
    def check(self) -> None:
        """Raise ``LockLost`` if this process lost its lock; renew first when the last renewal is old."""
        st = self._state
        if st.lost:
            raise self._lost_error()
        with st.guard:
            due = [h for h in st.held.values() if _clock() - h.renewed >= h.ttl / 3]
        for held in due:
            try:
                self._renew(held)
            except StorageError as exc:
                if _clock() - held.renewed >= held.ttl:
                    self._lose(f"it could not be renewed for {held.ttl:g}s ({exc})")
        if st.lost:
            raise self._lost_error()

    def held(self) -> str | None:
        """The strongest mode this process holds, or None."""
        for mode in reversed(MODES):
            if mode in self._state.held:
                return mode
        return None

    def write_token(self) -> object | None:
        """An object that stands for this process's current hold of the write (or exclusive) lock, the
        same for the whole hold and new for the next; None when neither is held. While one hold lasts
        no other process can change what the repository holds."""
        st = self._state
        return st.held.get("exclusive") or st.held.get("write")

    @property
    def lost(self) -> bool:
        return self._state.lost is not None

    def _lost_error(self) -> LockLost:
        return LockLost(f"this process lost the lock of {self.backend.url}: {self._state.lost}; the operation "
                        "was cancelled and nothing more was committed",
                        hint="run it again (a process frozen or cut off for longer than BACKUP_LOCK_TTL_SECONDS "
                             "loses its lock)")

    def holders(self) -> list[dict]:
        """Who holds lock files now (for messages and ``status``)."""
        out = []
        for mode, holder, _n, age, name in self._files():  # type: ignore[misc]
            out.append({**self._record(name), "mode": mode, "holder": holder, "age_s": round(age, 1)})
        return out

    def _holders_text(self, in_process: bool = False) -> str:
        if in_process:
            return "another operation of this process"
        try:
            hs = self.holders()
        except StorageError:
            hs = []
        if not hs:
            return "another operation"
        h = hs[0]
        return (f"{h.get('operation', 'another operation')} (pid {h.get('pid', '?')} on {h.get('host', '?')}, "
                f"since {h.get('time', '?')})")

    def _busy(self, operation: str, timeout: float, who: str) -> LockBusy:
        return LockBusy(f"cannot {operation}: the backup root {self.backend.url} is locked by {who}; "
                        f"gave up after {timeout:g}s", hint="wait for it to finish and try again")


class _Prefixed:
    """The registry key of one lock: its backend root and its prefix."""

    def __init__(self, backend: Backend, prefix: str) -> None:
        self._b, self._p = backend, prefix
        self.url = backend.url

    @property
    def identity(self) -> str:
        return f"{self._b.identity}#{self._p}"


__all__ = ["RepositoryLock", "MODES", "DEFAULT_TTL_S", "lock_ttl"]
