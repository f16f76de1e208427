"""Dashboard users: argon2 password hashes, roles, lock-out after repeated failures.

Only hashes are ever stored (argon2id via argon2-cffi); a password lives in
memory just long enough to be hashed or checked and is never logged.

Users come from three places, the first that names a user wins:

1. ``<backup_root>/.auth/users.json``, written by
   ``python -m backup_core set-password USER [--role admin|viewer]``
   (mode 0600, replaced atomically under the ``filelock`` lock
   ``<backup_root>/.auth/.lock``, which excludes threads and processes);
2. ``.streamlit/secrets.toml``, section ``[auth.users.<name>]`` with
   ``password_hash`` and ``role``;
3. the environment: ``BACKUP_ADMIN_USER`` plus ``BACKUP_ADMIN_PASSWORD_HASH``
   (an admin; also read from the top level of secrets.toml).

Roles: ``admin`` may do everything, ``viewer`` may only look.

Lock-out: ``MAX_FAILURES`` failed logins for one name within
``FAILURE_WINDOW_S`` lock that name for ``LOCKOUT_S``, even with the right
password. The state lives in ``<backup_root>/.auth/lockout.json`` so it
survives restarts and is shared by every dashboard process and the CLI.
Unknown names are tracked the same way, so neither the message nor the
lock-out reveals which names exist. ``python -m backup_core unlock USER``
(:func:`unlock`) lifts a lock-out early; the lock-out message says so.

Sessions follow the user store: :func:`refresh` re-checks a logged-in
``User`` (the dashboard calls it on every rerun, without any argon2 work; the
user sources are re-read only when users.json or lockout.json change). A user
who was deleted, is locked out or whose password was changed is logged out;
a changed role applies at once. The password check compares a fingerprint of
the stored hash taken at login (16 hex digits of its SHA-256, never the hash
itself). Setting the same password again keeps the stored hash, so
``set-password USER --role viewer`` with the old password only changes the
role and leaves the user's sessions open.

Every login attempt is audited (action ``login``, outcome ``ok``/``error``),
and so are sessions ended by :func:`refresh` (action ``logout`` with a
``reason``) and ``unlock``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shlex
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from filelock import FileLock, Timeout

from . import audit
from .errors import AuthError, BackupError, ConfigError, LockBusy, StorageError, UsageError
from .fsutil import atomic_write

ROLES = ("admin", "viewer")
AUTH_DIR = ".auth"
USERS_FILE = "users.json"
LOCKOUT_FILE = "lockout.json"
MIN_PASSWORD_LENGTH = 8
# argon2 hashes any length, but a megabyte "password" is only a way to burn CPU
MAX_PASSWORD_LENGTH = 1024
MAX_FAILURES = 5
FAILURE_WINDOW_S = 15 * 60
LOCKOUT_S = 15 * 60
# bounds lockout.json when someone sprays random user names
MAX_TRACKED_NAMES = 10_000
# the auth files are held for milliseconds; a lock held longer is a hung process
LOCK_TIMEOUT_S = 30.0

USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
INVALID_LOGIN = "invalid user name or password"

_hasher = PasswordHasher()
_dummy_hash: str | None = None
_log = logging.getLogger(__name__)


def _now() -> float:
    """The clock for lock-out decisions; tests replace it."""
    return time.time()


@dataclass(frozen=True)
class User:
    name: str
    role: str
    # set by authenticate(): which stored password hash this login was checked against
    # (see _fingerprint); None for a User made by hand, which refresh() leaves alone
    fingerprint: str | None = field(default=None, compare=False, repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def to_json(self) -> dict:
        return {"user": self.name, "role": self.role}


@dataclass(frozen=True)
class _Account:
    user: User
    password_hash: str
    source: str  # "users.json", "secrets.toml" or "environment"


# ---------------------------------------------------------------- hashing

def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; safe to store, never reversible)."""
    _check_password(password)
    return _hasher.hash(password)


def _check_password(password: str) -> None:
    if not isinstance(password, str) or not password:
        raise UsageError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UsageError(f"the password is too long: use at most {MAX_PASSWORD_LENGTH} characters")


def _check_name(user: str) -> str:
    if not isinstance(user, str) or not USER_RE.match(user):
        raise UsageError(f"invalid user name {user!r}: use 1 to 64 letters, digits or _ . @ -")
    return user


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    return role


def _is_argon2(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("$argon2")


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _needs_rehash(password_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def _fingerprint(password_hash: str) -> str:
    """Names a stored hash without revealing it: a session compares it to notice a new password."""
    return hashlib.sha256(password_hash.encode("utf-8")).hexdigest()[:16]


def _spend_like_verify(password: str) -> None:
    """Check against a throw-away hash so unknown names take as long as known ones."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("not-a-real-password-" + os.urandom(8).hex())
    _verify(_dummy_hash, password)


# ---------------------------------------------------------------- files

def auth_dir(settings) -> Path:
    return Path(settings.backup_root) / AUTH_DIR


def users_path(settings) -> Path:
    return auth_dir(settings) / USERS_FILE


@contextmanager
def _auth_lock(settings) -> Iterator[Path]:
    """Exclusive lock over the auth files, across threads and processes.

    A new ``FileLock`` per use opens its own descriptor, and ``flock`` excludes
    every other descriptor of the file, in this process or another; a holder
    that dies releases it with its descriptor, so no stale lock remains.
    """
    d = auth_dir(settings)
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot open the user store in {d}: {exc.strerror}") from None
    lock = FileLock(d / ".lock", timeout=LOCK_TIMEOUT_S, mode=0o600, thread_local=True)
    try:
        lock.acquire()
    except Timeout:
        raise LockBusy(f"the user store in {d} is busy: its lock has been held elsewhere "
                       f"for more than {LOCK_TIMEOUT_S:g} s") from None
    except OSError as exc:
        raise StorageError(f"cannot lock the user store in {d}: {exc.strerror}") from None
    try:
        yield d
    finally:
        lock.release()


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise StorageError(f"cannot read the {what} {path}: {exc.strerror}") from None
    except ValueError:
        raise ConfigError(f"the {what} {path} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError(f"the {what} {path} is not a JSON object")
    return data


def _write_json_0600(path: Path, data: dict) -> None:
    """Replace ``path`` atomically (readers see the old or the new file, never half), mode 0600."""
    body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        atomic_write(path, body, mode=0o600)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror}") from None


# ---------------------------------------------------------------- user sources

def _file_accounts(settings) -> dict[str, _Account]:
    path = users_path(settings)
    users = _read_json(path, "user file").get("users", {})
    if not isinstance(users, dict):
        raise ConfigError(f"the user file {path} has no 'users' object")
    out = {}
    for name, entry in users.items():
        out[name] = _account(name, entry, "users.json", path)
    return out


def _secrets_accounts(secrets: Mapping[str, Any]) -> dict[str, _Account]:
    section = secrets.get("auth", {}) if isinstance(secrets, Mapping) else {}
    users = section.get("users", {}) if isinstance(section, Mapping) else {}
    if not isinstance(users, Mapping):
        raise ConfigError("secrets.toml: [auth.users] must be a table of users")
    return {name: _account(name, entry, "secrets.toml", "secrets.toml [auth.users]")
            for name, entry in users.items()}


def _admin_from(settings, env: Mapping[str, str] | None) -> tuple[str | None, str | None]:
    """BACKUP_ADMIN_USER / BACKUP_ADMIN_PASSWORD_HASH: from ``Settings`` (which read the environment and
    secrets.toml), or from an explicit ``env`` mapping (tests)."""
    secrets = settings.secrets if isinstance(settings.secrets, Mapping) else {}
    if env is None:
        name = getattr(settings, "admin_user", None) or secrets.get("BACKUP_ADMIN_USER")
        pw_hash = getattr(settings, "admin_password_hash", None) or secrets.get("BACKUP_ADMIN_PASSWORD_HASH")
        return name, pw_hash
    return (env.get("BACKUP_ADMIN_USER") or secrets.get("BACKUP_ADMIN_USER"),
            env.get("BACKUP_ADMIN_PASSWORD_HASH") or secrets.get("BACKUP_ADMIN_PASSWORD_HASH"))


def _env_accounts(settings, env: Mapping[str, str] | None) -> dict[str, _Account]:
    name, pw_hash = _admin_from(settings, env)
    if not name and not pw_hash:
        return {}
    if not name or not pw_hash:
        raise ConfigError("set both BACKUP_ADMIN_USER and BACKUP_ADMIN_PASSWORD_HASH, or neither")
    return {name: _account(name, {"password_hash": pw_hash, "role": "admin"}, "environment",
                           "BACKUP_ADMIN_USER")}


def _account(name: str, entry: Any, source: str, where: Any) -> _Account:
    if not isinstance(name, str) or not USER_RE.match(name):
        raise ConfigError(f"{where}: invalid user name {name!r}")
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: the entry for user {name!r} is not a table")
    role = entry.get("role", "admin")
    if role not in ROLES:
        raise ConfigError(f"{where}: user {name!r} has an unknown role {role!r} (use {', '.join(ROLES)})")
    pw_hash = entry.get("password_hash")
    if not _is_argon2(pw_hash):
        # refuses plain-text passwords pasted into the config, too
        raise ConfigError(f"{where}: password_hash of user {name!r} is not an argon2 hash",
                          hint="make one with `python -m backup_core set-password USER --print-hash`")
    return _Account(User(name, role), pw_hash, source)


def _accounts(settings, env: Mapping[str, str] | None = None) -> dict[str, _Account]:
    merged: dict[str, _Account] = {}
    # later sources only fill in names the earlier ones do not define
    for source in (_file_accounts(settings), _secrets_accounts(settings.secrets or {}),
                   _env_accounts(settings, env)):
        for name, account in source.items():
            merged.setdefault(name, account)
    return merged


def has_users(settings) -> bool:
    """Whether any user is configured (if not, the dashboard tells how to create one)."""
    return bool(_accounts(settings))


def list_users(settings) -> list[User]:
    return [a.user for _, a in sorted(_accounts(settings).items())]


# ---------------------------------------------------------------- set-password

def set_password(settings, user: str, password: str, role: str = "admin") -> User:
    """Create ``user`` or change its password and role in users.json; clears its lock-out."""
    actor = getattr(settings, "user", "unknown")
    try:
        _check_name(user)
        _check_role(role)
        _check_password(password)
        # the same password again keeps its hash: a pure role change leaves the user's sessions
        # open, while a new password ends them (refresh() compares a fingerprint of the hash)
        old_hash = _stored_hash(_read_json(users_path(settings), "user file"), user)
        kept = old_hash if old_hash and _verify(old_hash, password) and not _needs_rehash(old_hash) else None
        pw_hash = kept or _hasher.hash(password)
        with _auth_lock(settings) as d:
            path = d / USERS_FILE
            data = _read_json(path, "user file")
            users = data.get("users", {})
            if not isinstance(users, dict):
                raise ConfigError(f"the user file {path} has no 'users' object")
            current = _stored_hash(data, user)
            if kept and current != kept:
                pw_hash = _hasher.hash(password)  # changed meanwhile by another process: rare
            password_changed = current != pw_hash
            users[user] = {"password_hash": pw_hash, "role": role,
                           "updated_at": audit.now_iso()}
            data["users"] = users
            data.setdefault("version", 1)
            _write_json_0600(path, data)
            # a new password is the way out of a lock-out
            state = _read_json(d / LOCKOUT_FILE, "lock-out state")
            if state.pop(user, None) is not None:
                _write_json_0600(d / LOCKOUT_FILE, state)
    except Exception as exc:
        audit.record(settings.backup_root, user=actor, action="set-password", outcome="error",
                     target=user if isinstance(user, str) and USER_RE.match(user) else None,
                     role=role if role in ROLES else None, error=str(exc))
        raise
    audit.record(settings.backup_root, user=actor, action="set-password", target=user, role=role,
                 password_changed=password_changed)
    return User(user, role)


def _stored_hash(data: dict, user: str) -> str | None:
    users = data.get("users")
    entry = users.get(user) if isinstance(users, dict) else None
    pw_hash = entry.get("password_hash") if isinstance(entry, dict) else None
    return pw_hash if _is_argon2(pw_hash) else None


# ---------------------------------------------------------------- login

def _minutes_left(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) / 60))


def python_command() -> str:
    """The interpreter of this installation as an operator would type it.

    ``sys.executable`` (not resolved: a venv's python is a symlink to a system
    python that lacks the venv's packages), relative to the current directory
    when it is inside it, e.g. ``.venv/bin/python``.
    """
    exe = os.path.abspath(sys.executable or "python3")
    try:
        rel = os.path.relpath(exe)
    except ValueError:
        rel = exe
    if rel != os.pardir and not rel.startswith(os.pardir + os.sep):
        exe = rel if os.sep in rel else os.curdir + os.sep + rel
    return shlex.quote(exe)


def unlock_command(user: str) -> str:
    """The command that lifts the lock-out of ``user``."""
    return f"{python_command()} -m backup_core unlock {shlex.quote(user)}"


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
    state = _read_json(auth_dir(settings) / LOCKOUT_FILE, "lock-out state")
    until = (state.get(user) or {}).get("locked_until") if isinstance(state.get(user), dict) else None
    now = _now()
    return max(0.0, until - now) if isinstance(until, (int, float)) else 0.0


def authenticate(settings, user: str, password: str) -> User:
    """Check a login; returns the ``User`` or raises ``AuthError`` (audited either way)."""
    root = settings.backup_root
    name_ok = isinstance(user, str) and bool(USER_RE.match(user))
    logged_name = user if name_ok else "<invalid name>"
    if not name_ok or not isinstance(password, str) or not password:
        audit.record(root, user=logged_name, action="login", outcome="error",
                     reason="invalid name" if not name_ok else "empty password")
        raise AuthError(INVALID_LOGIN)
    try:
        accounts = _accounts(settings)
    except ConfigError as exc:
        # a broken user configuration locks everyone out: make it visible in the log
        audit.record(root, user=user, action="login", outcome="error", reason="configuration",
                     error=str(exc))
        raise

    now = _now()
    with _auth_lock(settings) as d:
        state = _read_json(d / LOCKOUT_FILE, "lock-out state")
        until = (state.get(user) or {}).get("locked_until") if isinstance(state.get(user), dict) else None
    if isinstance(until, (int, float)) and until > now:
        audit.record(root, user=user, action="login", outcome="error", reason="locked",
                     locked_until=_iso(until))
        raise AuthError(_locked_message(until, now, user))

    # the slow hash check runs outside the lock so one login does not stall the others
    account = accounts.get(user)
    if account is None:
        _spend_like_verify(password)
        ok = False
    else:
        ok = _verify(account.password_hash, password)

    now = _now()
    with _auth_lock(settings) as d:
        state = _prune(_read_json(d / LOCKOUT_FILE, "lock-out state"), now)
        entry = state.get(user, {"failures": []})
        locked_until = entry.get("locked_until")
        if ok and not locked_until:
            if user in state:
                del state[user]
                _write_json_0600(d / LOCKOUT_FILE, state)
        elif not ok:
            entry["failures"] = entry["failures"] + [now]
            if len(entry["failures"]) >= MAX_FAILURES:
                locked_until = now + LOCKOUT_S
                entry = {"failures": [], "locked_until": locked_until}
            state[user] = entry
            _write_json_0600(d / LOCKOUT_FILE, state)
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


def require_admin(user: User | None, action: str) -> None:
    """Refuse a changing action to viewers and to nobody."""
    if user is None or not user.is_admin:
        raise AuthError(f"{action} needs the admin role")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


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
    path = auth_dir(settings) / LOCKOUT_FILE
    try:
        _check_name(user)
        entry = None
        # a mistyped backup root must not grow an .auth folder: no folder, no lock-out
        if auth_dir(settings).is_dir():
            now = _now()
            with _auth_lock(settings) as d:
                raw = _read_json(d / LOCKOUT_FILE, "lock-out state")
                state = _prune(raw, now)
                entry = state.pop(user, None)
                if user in raw:
                    _write_json_0600(d / LOCKOUT_FILE, state)
        until = entry.get("locked_until") if entry else None
        result = UnlockResult(user=user, was_locked=bool(until), locked_until=_iso(until) if until else None,
                              failures_cleared=len(entry.get("failures", [])) if entry else 0, path=str(path))
    except Exception as exc:
        audit.record(settings.backup_root, user=actor, action="unlock", outcome="error",
                     target=user if isinstance(user, str) and USER_RE.match(user) else None, error=str(exc))
        raise
    audit.record(settings.backup_root, user=actor, action="unlock", target=user,
                 was_locked=result.was_locked, locked_until=result.locked_until,
                 failures_cleared=result.failures_cleared)
    return result


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


def _file_signature(path: Path) -> tuple | None:
    """Changes whenever the file is replaced (atomic writes give a new inode) or written."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)


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
    signature = (_file_signature(users_path(settings)), _secrets_signature(settings), *_admin_from(settings, env))
    return _cached(("accounts", str(users_path(settings))), signature, lambda: _accounts(settings, env))


def _cached_locked_until(settings, user: str) -> float | None:
    path = auth_dir(settings) / LOCKOUT_FILE
    state = _cached(("lockout", str(path)), _file_signature(path),
                    lambda: _read_json(path, "lock-out state"))
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
    now = _now()
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
        audit.record(settings.backup_root, user=name, action="logout", reason=reason, **details)
    except Exception:  # noqa: BLE001 - the session ends even when the log cannot be written
        _log.warning("cannot record the logout of %s (%s)", name, reason, exc_info=True)
    return SessionCheck(None, reason, message)
