"""The first start's one-time admin password (as Jenkins and Grafana do it) and a user's own password change."""

from __future__ import annotations

import secrets as _secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

from .. import audit
from ..errors import AuthError, ConfigError, UsageError
from ..timeutil import now_iso
from . import common
from .common import (INITIAL_ADMIN, INITIAL_PASSWORD_FILE, USERS_FILE, User, UserFiles, _check_password,
                     _fingerprint, _verify, display_path, python_command)
from .users import _accounts, _stored_hash


# ---------------------------------------------------------------- first start, own password

@dataclass(frozen=True)
class InitialPassword:
    """The first start's one-time admin password, pending until its first use changes it."""

    user: str
    path: "Path | str"    # the private file that holds it (a local path, or an object store URL)
    password: str | None  # None when the file cannot be read (any more)
    created: bool         # made by this call: print the hint now (once)

    def console_text(self) -> str:
        """What the console that started the dashboard shows (Jenkins style)."""
        rule = "=" * 72
        lines = [rule, "First start: no dashboard user existed, so this one-time login was created:", "",
                 f"    user:      {self.user}"]
        if self.password:
            lines.append(f"    password:  {self.password}")
        where = display_path(self.path)
        shown = (f"    cat {shlex.quote(where)}" if "://" not in where
                 else f"    aws s3 cp {shlex.quote(where)} -")
        lines += ["",
                  f"It is also in {where} (readable only by this account):",
                  shown,
                  "Log in with it; the dashboard then asks for a new password and deletes the file.",
                  f"Or set your own admin password now: {python_command()} -m backup_core set-password "
                  f"{self.user}",
                  rule]
        return "\n".join(lines)


def initial_password_path(settings) -> "Path | str":
    """Where the one-time password is kept: a local path, or an object store URL."""
    where = UserFiles(settings).where(INITIAL_PASSWORD_FILE)
    return where if "://" in where else Path(where)


def ensure_initial_admin(settings) -> InitialPassword | None:
    """With no user anywhere, create ``admin`` with a one-time password; None when users exist.

    While that password is pending (the admin has not logged in and changed
    it yet), later calls return it again with ``created=False``. Safe to call
    from several processes at once: the user store's lock serialises it.
    """
    files = UserFiles(settings)
    path = initial_password_path(settings)
    accounts = _accounts(settings)
    if accounts:
        account = accounts.get(INITIAL_ADMIN)
        pending = files.read_text(INITIAL_PASSWORD_FILE)
        if account is None or not account.user.must_change_password or pending is None:
            return None
        return InitialPassword(INITIAL_ADMIN, path, pending, created=False)
    password = _secrets.token_urlsafe(15)  # 20 characters, 120 bits
    pw_hash = common._hasher.hash(password)
    actor = getattr(settings, "user", "unknown")
    try:
        with files.lock():
            data = files.read_json(USERS_FILE, "user file")
            users = data.get("users", {})
            if not isinstance(users, dict):
                raise ConfigError(f"the user file {files.where(USERS_FILE)} has no 'users' object")
            if users:  # another process was quicker
                created = False
            else:
                # the password file first: a user whose password nobody knows would lock everyone out
                files.write_text(INITIAL_PASSWORD_FILE, password + "\n")
                data["users"] = {INITIAL_ADMIN: {"password_hash": pw_hash, "role": "admin",
                                                 "must_change_password": True, "updated_at": now_iso()}}
                data.setdefault("version", 1)
                files.write_json(USERS_FILE, data)
                created = True
    except Exception as exc:
        audit.record(settings, user=actor, action="set-password", outcome="error",
                     target=INITIAL_ADMIN, initial=True, error=str(exc))
        raise
    if not created:
        return ensure_initial_admin(settings)
    audit.record(settings, user=actor, action="set-password", target=INITIAL_ADMIN, role="admin",
                 initial=True, file=str(path), reason="first start: no user existed")
    return InitialPassword(INITIAL_ADMIN, path, password, created=True)


def change_password(settings, user: User, new_password: str, current_password: str | None = None) -> User:
    """The logged-in ``user`` chooses a new password; returns the session's new ``User``.

    ``current_password`` is required, except right after a login with the
    first start's one-time password (``user.must_change_password``). Only
    users from users.json can change their password here (secrets.toml and
    the environment are the operator's files). The new password ends the
    user's other sessions; the one-time password file is deleted.
    """
    name = user.name
    try:
        _check_password(new_password)
        account = _accounts(settings).get(name)
        if account is None:
            raise AuthError(f"the user {name} no longer exists")
        if account.source != "users.json":
            raise UsageError(f"the user {name} is defined in {account.source}; change its password_hash there "
                             f"(make one with `{python_command()} -m backup_core set-password {name} --print-hash`)")
        if user.fingerprint is None or _fingerprint(account.password_hash) != user.fingerprint:
            raise AuthError("the password was changed since you logged in; log in again")
        if current_password is None:
            if not account.user.must_change_password:
                raise UsageError("enter your current password")
        elif not _verify(account.password_hash, current_password):
            raise AuthError("the current password is wrong")
        if _verify(account.password_hash, new_password):
            raise UsageError("choose a password different from the current one")
        pw_hash = common._hasher.hash(new_password)
        files = UserFiles(settings)
        with files.lock():
            data = files.read_json(USERS_FILE, "user file")
            if _stored_hash(data, name) != account.password_hash:
                raise AuthError("the password was changed meanwhile; log in again")
            data["users"][name] = {"password_hash": pw_hash, "role": account.user.role,
                                   "updated_at": now_iso()}
            files.write_json(USERS_FILE, data)
            removed = files.remove(INITIAL_PASSWORD_FILE) if name == INITIAL_ADMIN else False
    except Exception as exc:
        audit.record(settings, user=name, action="change-password", outcome="error",
                     target=name, error=str(exc))
        raise
    audit.record(settings, user=name, action="change-password", target=name,
                 initial=account.user.must_change_password or None, initial_file_removed=removed or None)
    return User(name, account.user.role, fingerprint=_fingerprint(pw_hash))


