"""Who the users are: users.json (set-password), secrets.toml, the environment; creating and changing them."""

from __future__ import annotations

from typing import Any, Mapping

from .. import audit
from ..errors import ConfigError
from ..timeutil import now_iso
from . import common
from .common import (INITIAL_ADMIN, INITIAL_PASSWORD_FILE, LOCKOUT_FILE, ROLES, USER_RE, USERS_FILE, User,
                     UserFiles, _Account, _check_name, _check_password, _check_role, _is_argon2,
                     _needs_rehash, _verify)


# ---------------------------------------------------------------- user sources

def _file_accounts(settings) -> dict[str, _Account]:
    files = UserFiles(settings)
    users = files.read_json(USERS_FILE, "user file").get("users", {})
    if not isinstance(users, dict):
        raise ConfigError(f"the user file {files.where(USERS_FILE)} has no 'users' object")
    return {name: _account(name, entry, "users.json", files.where(USERS_FILE)) for name, entry in users.items()}


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
    must_change = source == "users.json" and entry.get("must_change_password") is True
    return _Account(User(name, role, must_change_password=must_change), pw_hash, source)


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
        files = UserFiles(settings)
        old_hash = _stored_hash(files.read_json(USERS_FILE, "user file"), user)
        kept = old_hash if old_hash and _verify(old_hash, password) and not _needs_rehash(old_hash) else None
        pw_hash = kept or common._hasher.hash(password)
        with files.lock():
            data = files.read_json(USERS_FILE, "user file")
            users = data.get("users", {})
            if not isinstance(users, dict):
                raise ConfigError(f"the user file {files.where(USERS_FILE)} has no 'users' object")
            current = _stored_hash(data, user)
            if kept and current != kept:
                pw_hash = common._hasher.hash(password)  # changed meanwhile by another process: rare
            password_changed = current != pw_hash
            users[user] = {"password_hash": pw_hash, "role": role,
                           "updated_at": now_iso()}
            data["users"] = users
            data.setdefault("version", 1)
            files.write_json(USERS_FILE, data)
            # a new password is the way out of a lock-out
            state = files.read_json(LOCKOUT_FILE, "lock-out state")
            if state.pop(user, None) is not None:
                files.write_json(LOCKOUT_FILE, state)
            if user == INITIAL_ADMIN:  # the one-time password no longer works
                files.remove(INITIAL_PASSWORD_FILE)
    except Exception as exc:
        audit.record(settings, user=actor, action="set-password", outcome="error",
                     target=user if isinstance(user, str) and USER_RE.match(user) else None,
                     role=role if role in ROLES else None, error=str(exc))
        raise
    audit.record(settings, user=actor, action="set-password", target=user, role=role,
                 password_changed=password_changed)
    return User(user, role)


def _stored_hash(data: dict, user: str) -> str | None:
    users = data.get("users")
    entry = users.get(user) if isinstance(users, dict) else None
    pw_hash = entry.get("password_hash") if isinstance(entry, dict) else None
    return pw_hash if _is_argon2(pw_hash) else None


