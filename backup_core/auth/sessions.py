"""Sessions follow the user store: a logged-in user is re-checked on every rerun, cheaply."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from .. import audit
from ..errors import BackupError
from . import common
from .common import (LOCKOUT_FILE, MAX_FAILURES, USERS_FILE, User, UserFiles, _Account, _fingerprint, _iso,
                     unlock_command)
from .login import _minutes_left
from .users import _accounts, _admin_from

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------- sessions

@dataclass(frozen=True)
class SessionCheck:
    """What :func:`refresh` found: the session's user now, or None and why it ended."""

    user: User | None
    # "" unchanged, "role changed"; or why it ended: "deleted", "locked", "password changed", "configuration"
    reason: str = ""
    message: str = ""  # for the person whose session it is

    @property
    def ended(self) -> bool:
        return self.user is None


# (kind, path) -> (signature, value); a handful of entries per backup root
_cache: dict[tuple, tuple[Any, Any]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 64


def _cached(key: tuple, signature: Any, load: Callable[[], Any]) -> Any:
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    # the signature was taken before loading: a change in between only costs one more load later
    value = load()
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (signature, value)
    return value


def _secrets_signature(settings) -> str:
    secrets = settings.secrets if isinstance(settings.secrets, Mapping) else {}
    relevant = {k: secrets.get(k) for k in ("auth", "BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()


def _cached_accounts(settings, env: Mapping[str, str] | None) -> dict[str, _Account]:
    """``_accounts``, re-read only when users.json, the secrets or the admin variables change."""
    files = UserFiles(settings)
    signature = (files.signature(USERS_FILE), _secrets_signature(settings), *_admin_from(settings, env))
    return _cached(("accounts", files.where(USERS_FILE)), signature, lambda: _accounts(settings, env))


def _cached_locked_until(settings, user: str) -> float | None:
    files = UserFiles(settings)
    state = _cached(("lockout", files.where(LOCKOUT_FILE)), files.signature(LOCKOUT_FILE),
                    lambda: files.read_json(LOCKOUT_FILE, "lock-out state"))
    entry = state.get(user)
    until = entry.get("locked_until") if isinstance(entry, dict) else None
    return until if isinstance(until, (int, float)) else None


def refresh(settings, user: User, env: Mapping[str, str] | None = None) -> SessionCheck:
    """Re-check a logged-in ``user`` against the user store, cheaply (no password hashing).

    Ends the session (``user`` None, audited as ``logout`` with its reason) when
    the user no longer exists, is locked out, or has a new password since this
    login; a changed role comes back as a new ``User``. A broken user
    configuration ends the session too: fail closed. A ``User`` without a
    fingerprint was not made by :func:`authenticate` and is returned as it is.
    """
    if user.fingerprint is None:
        return SessionCheck(user)
    name = user.name
    try:
        account = _cached_accounts(settings, env).get(name)
        until = _cached_locked_until(settings, name)
    except BackupError as exc:
        return _end_session(settings, name, "configuration",
                            f"You were logged out: the user configuration cannot be read ({exc}).")
    now = common._now()
    if account is None:
        return _end_session(settings, name, "deleted",
                            f"You were logged out: the user {name} no longer exists.")
    if until is not None and until > now:
        n = _minutes_left(until, now)
        return _end_session(settings, name, "locked",
                            f"You were logged out: the user {name} is locked after {MAX_FAILURES} "
                            f"failed logins; try again in {n} minute{'s' if n != 1 else ''} "
                            f"or ask an admin to run: {unlock_command(name)}", locked_until=_iso(until))
    if _fingerprint(account.password_hash) != user.fingerprint:
        return _end_session(settings, name, "password changed",
                            f"You were logged out: the password of {name} was changed. "
                            "Log in with the new password.")
    if account.user.role != user.role:
        return SessionCheck(replace(user, role=account.user.role), "role changed",
                            f"Your role is now {account.user.role}.")
    return SessionCheck(user)


def _end_session(settings, name: str, reason: str, message: str, **details: Any) -> SessionCheck:
    try:
        audit.record(settings, user=name, action="logout", reason=reason, **details)
    except Exception:  # noqa: BLE001 - the session ends even when the log cannot be written
        _log.warning("cannot record the logout of %s (%s)", name, reason, exc_info=True)
    return SessionCheck(None, reason, message)
