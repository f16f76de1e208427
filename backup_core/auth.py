"""Dashboard users: argon2 password hashes, roles, lock-out after repeated failures.

Only hashes are ever stored (argon2id via argon2-cffi); a password lives in
memory just long enough to be hashed or checked and is never logged.

Users come from three places, the first that names a user wins:

1. ``<backup_root>/.auth/users.json``, written by
   ``python -m backup_core set-password USER [--role admin|viewer]``
   (mode 0600, replaced atomically under ``<backup_root>/.auth/.lock``);
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
lock-out reveals which names exist.

Every login attempt is audited (action ``login``, outcome ``ok``/``error``).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from . import audit
from .errors import AuthError, ConfigError, StorageError, UsageError

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

USER_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
INVALID_LOGIN = "invalid user name or password"

_hasher = PasswordHasher()
_dummy_hash: str | None = None
_thread_lock = threading.Lock()


def _now() -> float:
    """The clock for lock-out decisions; tests replace it."""
    return time.time()


@dataclass(frozen=True)
class User:
    name: str
    role: str

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
    """Exclusive lock over the auth files, across threads and processes."""
    d = auth_dir(settings)
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open the user store in {d}: {exc.strerror}") from None
    # flock is per open file description, so threads of one process also exclude
    # each other; the thread lock just keeps them from spinning in the kernel
    with _thread_lock:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield d
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


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
    """Replace ``path`` atomically: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    body = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a leftover file
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
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


def _env_accounts(settings, env: Mapping[str, str] | None) -> dict[str, _Account]:
    env = os.environ if env is None else env
    secrets = settings.secrets if isinstance(settings.secrets, Mapping) else {}
    name = env.get("BACKUP_ADMIN_USER") or secrets.get("BACKUP_ADMIN_USER")
    pw_hash = env.get("BACKUP_ADMIN_PASSWORD_HASH") or secrets.get("BACKUP_ADMIN_PASSWORD_HASH")
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
        pw_hash = hash_password(password)
        with _auth_lock(settings) as d:
            path = d / USERS_FILE
            data = _read_json(path, "user file")
            users = data.get("users", {})
            if not isinstance(users, dict):
                raise ConfigError(f"the user file {path} has no 'users' object")
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
    audit.record(settings.backup_root, user=actor, action="set-password", target=user, role=role)
    return User(user, role)


# ---------------------------------------------------------------- login

def _minutes_left(until: float, now: float) -> int:
    return max(1, math.ceil((until - now) / 60))


def _locked_message(until: float, now: float) -> str:
    n = _minutes_left(until, now)
    return (f"account locked after {MAX_FAILURES} failed logins; "
            f"try again in {n} minute{'s' if n != 1 else ''}")


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
        raise AuthError(_locked_message(until, now))

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
        raise AuthError(_locked_message(locked_until, now))
    if not ok:
        audit.record(root, user=user, action="login", outcome="error",
                     reason="unknown user" if account is None else "wrong password",
                     failures=len(entry.get("failures", [])) if not locked_until else MAX_FAILURES,
                     locked_until=_iso(locked_until) if locked_until else None)
        if locked_until:
            raise AuthError(_locked_message(locked_until, now))
        raise AuthError(INVALID_LOGIN)
    audit.record(root, user=user, action="login", role=account.user.role, source=account.source)
    return account.user


def require_admin(user: User | None, action: str) -> None:
    """Refuse a changing action to viewers and to nobody."""
    if user is None or not user.is_admin:
        raise AuthError(f"{action} needs the admin role")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
