"""Logging in: the password check, the lock-out after repeated failures, and lifting it (``unlock``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .. import audit
from ..errors import AuthError, ConfigError
from . import common
from .common import (FAILURE_WINDOW_S, INVALID_LOGIN, LOCKOUT_FILE, LOCKOUT_S, MAX_FAILURES, MAX_TRACKED_NAMES,
                     USER_RE, User, UserFiles, _check_name, _fingerprint, _iso, _spend_like_verify, _verify,
                     unlock_command)
from .users import _accounts


# ---------------------------------------------------------------- login

def _minutes_left(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) / 60))


def _locked_message(until: float, now: float, user: str) -> str:
    n = _minutes_left(until, now)
    return (f"account locked after {MAX_FAILURES} failed logins; "
            f"try again in {n} minute{'s' if n != 1 else ''} "
            f"or ask an admin to run: {unlock_command(user)}")


def _prune(state: dict, now: float) -> dict:
    """Drop expired failures and lock-outs; keep the file small."""
    out = {}
    for name, entry in state.items():
        if not isinstance(entry, dict):
            continue
        fails = [t for t in entry.get("failures", []) if isinstance(t, (int, float))
                 and now - t < FAILURE_WINDOW_S]
        until = entry.get("locked_until")
        until = until if isinstance(until, (int, float)) and until > now else None
        if fails or until:
            out[name] = {"failures": fails, **({"locked_until": until} if until else {})}
    if len(out) > MAX_TRACKED_NAMES:
        newest = sorted(out, key=lambda n: max(out[n]["failures"] or [out[n].get("locked_until", 0)]))
        for name in newest[: len(out) - MAX_TRACKED_NAMES]:
            del out[name]
    return out


def lockout_remaining(settings, user: str) -> float:
    """Seconds until ``user`` may try again (0 when not locked)."""
    state = UserFiles(settings).read_json(LOCKOUT_FILE, "lock-out state")
    until = (state.get(user) or {}).get("locked_until") if isinstance(state.get(user), dict) else None
    now = common._now()
    return max(0.0, until - now) if isinstance(until, (int, float)) else 0.0


def authenticate(settings, user: str, password: str) -> User:
    """Check a login; returns the ``User`` or raises ``AuthError`` (audited either way)."""
    root = settings  # the log of the configured root, with its key
    _refuse_malformed(root, user, password)
    try:
        accounts = _accounts(settings)
    except ConfigError as exc:
        # a broken user configuration locks everyone out: make it visible in the log
        audit.record(root, user=user, action="login", outcome="error", reason="configuration",
                     error=str(exc))
        raise
    files = UserFiles(settings)
    _refuse_locked(files, root, user)
    # the slow hash check runs outside the lock so one login does not stall the others
    account = accounts.get(user)
    if account is None:
        _spend_like_verify(password)
        ok = False
    else:
        ok = _verify(account.password_hash, password)
    now = common._now()
    entry, locked_until = _count_attempt(files, user, ok, now)
    if ok and locked_until:
        # another process locked the name while this password was being checked
        audit.record(root, user=user, action="login", outcome="error", reason="locked",
                     locked_until=_iso(locked_until))
        raise AuthError(_locked_message(locked_until, now, user))
    if not ok:
        audit.record(root, user=user, action="login", outcome="error",
                     reason="unknown user" if account is None else "wrong password",
                     failures=len(entry.get("failures", [])) if not locked_until else MAX_FAILURES,
                     locked_until=_iso(locked_until) if locked_until else None)
        if locked_until:
            raise AuthError(_locked_message(locked_until, now, user))
        raise AuthError(INVALID_LOGIN)
    audit.record(root, user=user, action="login", role=account.user.role, source=account.source)
    return replace(account.user, fingerprint=_fingerprint(account.password_hash))


def _refuse_malformed(root, user: object, password: object) -> None:
    """A name that cannot be an account or an empty password: refused before anything is read."""
    name_ok = isinstance(user, str) and bool(USER_RE.match(user))
    if not name_ok or not isinstance(password, str) or not password:
        audit.record(root, user=user if name_ok else "<invalid name>", action="login", outcome="error",
                     reason="invalid name" if not name_ok else "empty password")
        raise AuthError(INVALID_LOGIN)


def _refuse_locked(files: UserFiles, root, user: str) -> None:
    """A name locked out now is refused before its password is checked."""
    now = common._now()
    with files.lock():
        state = files.read_json(LOCKOUT_FILE, "lock-out state")
        until = (state.get(user) or {}).get("locked_until") if isinstance(state.get(user), dict) else None
    if isinstance(until, (int, float)) and until > now:
        audit.record(root, user=user, action="login", outcome="error", reason="locked",
                     locked_until=_iso(until))
        raise AuthError(_locked_message(until, now, user))


def _count_attempt(files: UserFiles, user: str, ok: bool, now: float) -> tuple[dict, float | None]:
    """Record the outcome in the lock-out state: (the name's entry, when its lock-out ends, if it has one).

    A success forgets the name's failures, unless another process locked it
    meanwhile; the ``MAX_FAILURES``-th failure locks it for ``LOCKOUT_S``.
    """
    with files.lock():
        state = _prune(files.read_json(LOCKOUT_FILE, "lock-out state"), now)
        entry = state.get(user, {"failures": []})
        locked_until = entry.get("locked_until")
        if ok and not locked_until:
            if user in state:
                del state[user]
                files.write_json(LOCKOUT_FILE, state)
        elif not ok:
            entry["failures"] = entry["failures"] + [now]
            if len(entry["failures"]) >= MAX_FAILURES:
                locked_until = now + LOCKOUT_S
                entry = {"failures": [], "locked_until": locked_until}
            state[user] = entry
            files.write_json(LOCKOUT_FILE, state)
    return entry, locked_until


def require_admin(user: User | None, action: str) -> None:
    """Refuse a changing action to viewers and to nobody."""
    if user is None or not user.is_admin:
        raise AuthError(f"{action} needs the admin role")



# ---------------------------------------------------------------- unlock

@dataclass(frozen=True)
class UnlockResult:
    user: str
    was_locked: bool
    locked_until: str | None  # when the lifted lock-out would have ended (UTC ISO-8601)
    failures_cleared: int     # recent failed logins forgotten with it
    path: str                 # the lock-out state file that was looked at

    def to_json(self) -> dict:
        return {"user": self.user, "was_locked": self.was_locked, "locked_until": self.locked_until,
                "failures_cleared": self.failures_cleared, "path": self.path}

    def to_text(self) -> str:
        if self.was_locked:
            return f"unlocked {self.user!r} (locked until {self.locked_until}); it can log in again now"
        n = self.failures_cleared
        forgot = f"; forgot {n} recent failed login{'s' if n != 1 else ''}" if n else "; nothing to unlock"
        return f"{self.user!r} was not locked (checked {self.path}){forgot}"


def unlock(settings, user: str) -> UnlockResult:
    """Lift the lock-out of ``user`` and forget its failed logins (any name, known or not); audited."""
    actor = getattr(settings, "user", "unknown")
    files = UserFiles(settings)
    path = files.where(LOCKOUT_FILE)
    try:
        _check_name(user)
        entry = None
        # a mistyped backup root must not grow an .auth folder: no folder, no lock-out
        if files.exists():
            now = common._now()
            with files.lock():
                raw = files.read_json(LOCKOUT_FILE, "lock-out state")
                state = _prune(raw, now)
                entry = state.pop(user, None)
                if user in raw:
                    files.write_json(LOCKOUT_FILE, state)
        until = entry.get("locked_until") if entry else None
        result = UnlockResult(user=user, was_locked=bool(until), locked_until=_iso(until) if until else None,
                              failures_cleared=len(entry.get("failures", [])) if entry else 0, path=str(path))
    except Exception as exc:
        audit.record(settings, user=actor, action="unlock", outcome="error",
                     target=user if isinstance(user, str) and USER_RE.match(user) else None, error=str(exc))
        raise
    audit.record(settings, user=actor, action="unlock", target=user,
                 was_locked=result.was_locked, locked_until=result.locked_until,
                 failures_cleared=result.failures_cleared)
    return result


