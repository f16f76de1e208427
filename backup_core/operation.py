"""One operation wrapper: lock, sweep, audit "started" and outcome, in one place.

Every backup, restore, clean-up, delete, import and export runs inside
``operation(store, action, ...)``, whoever starts it (CLI, dashboard,
scheduler, tests), so none can forget a step:

1. an audit entry ``outcome: "started"`` is written first (so a run killed
   later, or one that fails before the database answers, is on the record);
2. the store's lock is taken (unless the action only reads) and what killed
   runs left behind is swept;
3. the body runs; a core function called inside an operation of the same
   action joins it instead of starting another (an entry point opens the
   operation before it connects, then calls the core function);
4. exactly one outcome entry is written: ``ok`` with the details the body
   noted, or the error (``refused`` when nothing was attempted).

``prepare_db`` sweeps stale swap-in collections (``swapin.py``) of a
database once per operation, before the operation touches that database,
and from then on anchors the audit log's head in that database's metadata
database (``audit.anchor_in``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Iterator

from pymongo.database import Database

from .audit.heads import anchor_in
from .audit.logs import AuditUnwritable
from .errors import BackupError, StorageError
from .locks import DEFAULT_TIMEOUT, owner_record
from .swapin import SwapInRegistry

log = logging.getLogger(__name__)
_RESERVED = frozenset({"user", "action", "outcome", "op", "error", "duration_s", "at", "seq", "prev", "hash"})
_local = threading.local()
# ids of the operations running in this process, any thread (swap-in entries of other ids of this
# process belong to operations that ended without cleaning up: the database was gone, say)
_running: set[str] = set()
_running_guard = threading.Lock()


def running_ids() -> set[str]:
    with _running_guard:
        return set(_running)


@dataclass
class Operation:
    id: str
    action: str
    user: str
    store: Any
    details: dict = field(default_factory=dict)
    parent: "Operation | None" = None
    meta_db: str | None = None
    outcome: dict = field(default_factory=dict)
    _prepared: set = field(default_factory=set)

    def note(self, **details: Any) -> None:
        """Details for the outcome entry (counts, ids, ...)."""
        self.outcome.update({k: v for k, v in details.items() if v is not None})

    def prepare_db(self, db: Database) -> None:
        """Sweep swap-in collections that killed restores left in ``db`` (once per operation)."""
        key = (id(db.client), db.name)
        root = self
        while root.parent is not None:
            root = root.parent
        if key in root._prepared:
            return
        root._prepared.add(key)
        registry = SwapInRegistry.of(db, self.meta_db)
        dropped = registry.sweep(running_ids())
        if dropped:
            self.note(swept_staging=dropped)  # (the audit field keeps its first name)
        # from now on this process keeps the audit log's head in the metadata database too
        anchor_in(self.store.audit_log(), registry.meta)


def _stack() -> list[Operation]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current() -> Operation | None:
    stack = _stack()
    return stack[-1] if stack else None


def _same_store(a: Any, b: Any) -> bool:
    return a is b or getattr(a, "url", None) == getattr(b, "url", None)


@contextmanager
def operation(store: Any, action: str, *, user: str, details: dict | None = None, lock: bool | str = True,
              lock_timeout: float = DEFAULT_TIMEOUT, meta_db: str | None = None) -> Iterator[Operation]:
    """Run one audited operation on ``store`` (see the module docstring)."""
    outer = current()
    if outer is not None and outer.action == action and _same_store(outer.store, store):
        yield outer  # a core function joining its entry point's operation
        return
    op = Operation(id=secrets.token_hex(8), action=action, user=user, store=store,
                   details={k: v for k, v in (details or {}).items() if v is not None},
                   parent=outer, meta_db=meta_db or (outer.meta_db if outer else None))
    audit = store.audit_log()
    started = time.monotonic()
    try:
        audit.record(user=user, action=action, outcome="started", op=op.id, parent=outer.id if outer else None,
                     **{k: v for k, v in {**owner_record(), **op.details}.items() if k not in _RESERVED})
    except AuditUnwritable as exc:
        raise _not_started(action, exc) from None
    outcome, error = "ok", None
    stack = _stack()
    with _running_guard:
        _running.add(op.id)
    try:
        # lock: True (a writer: one at a time, readers allowed), "exclusive" (clean-up: nothing else),
        # "shared" (a reader that clean-up must wait for), or False (none)
        mode = {True: "write", "exclusive": "exclusive", "shared": "read"}.get(lock)  # type: ignore[call-overload]
        held = store.lock(action, lock_timeout, mode=mode) if mode else nullcontext()
        with held:
            if mode in ("write", "exclusive"):
                swept = store.sweep()
                if swept:
                    op.note(swept=swept)
            stack.append(op)
            try:
                yield op
            finally:
                stack.remove(op)
    except BackupError as exc:
        outcome, error = exc.audit_outcome, str(exc)
        raise
    except (KeyboardInterrupt, SystemExit):
        outcome, error = "error", "interrupted"
        raise
    except BaseException as exc:
        outcome, error = "error", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with _running_guard:
            _running.discard(op.id)
        fields = {k: v for k, v in {**op.details, **op.outcome}.items() if k not in _RESERVED}
        try:
            audit.record(user=user, action=action, outcome=outcome, op=op.id, **fields, error=error,
                         duration_s=round(time.monotonic() - started, 3))
        except BackupError as exc:
            log.error("cannot record the outcome of %s %s: %s", action, op.id, exc)


def _not_started(action: str, exc: AuditUnwritable) -> BackupError:
    """Why an operation did not start because its audit entry could not be written, and what to do."""
    name = action.replace("_", " ")
    writes = " and a safety backup" if action in ("restore", "undo") else ""
    if exc.cause == "read-only":
        hint = (f"nothing was changed: every {name} writes its audit entry{writes} to the backup root first; "
                "make it writable" + (", or copy the backup to a writable root (copy ID --to ROOT) and restore "
                                      "from there" if writes else ""))
    elif exc.cause == "full":
        hint = "nothing was changed; free some space (e.g. with cleanup) and try again"
    else:
        hint = "nothing was changed"
    return StorageError(f"{name} not started: {exc}", hint=hint)


def prepare_db(db: Database) -> None:
    """``Operation.prepare_db`` of the current operation (no-op outside one)."""
    op = current()
    if op is not None:
        op.prepare_db(db)


def note(**details: Any) -> None:
    op = current()
    if op is not None:
        op.note(**details)


def meta_db_name() -> str | None:
    op = current()
    return op.meta_db if op is not None else None
