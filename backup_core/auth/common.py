"""What every part of the user store shares: users, roles, password hashing, the clock, where the files are.

The user store's files (``users.json``, ``lockout.json``, the first start's
one-time password) are kept with the backups, through the store's small
shared-state area (``Store.state("auth")``): ``<root>/.auth/`` for a local
folder (mode 0600, replaced atomically, under a ``filelock``), objects under
``<prefix>/.auth/`` for an object store (under a lock object), so every
dashboard and CLI that shares the backup root sees the same users.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..errors import ConfigError, LockBusy, UsageError

ROLES = ("admin", "viewer")
AUTH_DIR = ".auth"
AREA = "auth"
USERS_FILE = "users.json"
LOCKOUT_FILE = "lockout.json"
INITIAL_PASSWORD_FILE = "initial_admin_password"
INITIAL_ADMIN = "admin"
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


def _now() -> float:
    """The clock for lock-out decisions; tests replace it."""
    return time.time()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True)
class User:
    name: str
    role: str
    # set by authenticate(): which stored password hash this login was checked against
    # (see _fingerprint); None for a User made by hand, which refresh() leaves alone
    fingerprint: str | None = field(default=None, compare=False, repr=False)
    # logged in with the first start's one-time password: must choose a new one before anything else
    must_change_password: bool = field(default=False, compare=False)

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


# ---------------------------------------------------------------- where the files are

class UserFiles:
    """The user store's files of one backup root (see the module docstring)."""

    def __init__(self, settings) -> None:
        from ..store import open_store

        self.state = open_store(settings.backup_root).state(AREA)

    def where(self, name: str = "") -> str:
        return self.state.where(name)

    @contextmanager
    def lock(self) -> Iterator["UserFiles"]:
        """Exclusive over the user store's files, across threads, processes and hosts."""
        try:
            held = self.state.lock(LOCK_TIMEOUT_S)
            held.__enter__()
        except LockBusy:
            raise LockBusy(f"the user store in {self.where()} is busy: its lock has been held elsewhere "
                           f"for more than {LOCK_TIMEOUT_S:g} s") from None
        try:
            yield self
        finally:
            held.__exit__(None, None, None)

    def read_json(self, name: str, what: str) -> dict:
        raw = self.state.read(name)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            raise ConfigError(f"the {what} {self.where(name)} is not valid JSON") from None
        if not isinstance(data, dict):
            raise ConfigError(f"the {what} {self.where(name)} is not a JSON object")
        return data

    def write_json(self, name: str, data: dict) -> None:
        """Replace ``name`` atomically (readers see the old or the new one, never half), private."""
        self.state.write(name, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def read_text(self, name: str) -> str | None:
        raw = self.state.read(name)
        return raw.decode("utf-8", "replace").strip() or None if raw is not None else None

    def write_text(self, name: str, text: str) -> None:
        self.state.write(name, text.encode("utf-8"))

    def remove(self, name: str) -> bool:
        return self.state.remove(name)

    def exists(self) -> bool:
        return self.state.exists()

    def signature(self, name: str) -> tuple:
        return self.state.signature(name)


def auth_dir(settings) -> Path:
    """The user store's folder of a local backup root."""
    return Path(settings.backup_root) / AUTH_DIR


def users_path(settings) -> Path:
    return auth_dir(settings) / USERS_FILE


def display_path(path: Path | str) -> str:
    """``path`` relative to the current directory when inside it, as an operator would type it."""
    if "://" in str(path):
        return str(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith(os.pardir) else rel


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
