"""The first start's one-time admin password (as Jenkins and Grafana do it) and a user's own password change.

Only the password's hash is kept with the backups (``users.json``). On a
local backup root the password itself is also kept until its first use in a
file only the dashboard's account can read (``.auth/initial_admin_password``,
0600), so the admin can read it on that machine. In an object store it is
never stored: everyone who can read the bucket could read it there; it is
shown once, on the console that started the dashboard, and whoever lost it
sets a password with ``set-password``.
"""

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
    path: "Path | None"   # the private local file that holds it; None: not stored (object store), shown once
    password: str | None  # None when it cannot be read (any more)
    created: bool         # made by this call: print the hint now (once)

    @property
    def read_command(self) -> str | None:
        """The shell command that shows the password on this machine (None: it is not stored)."""
        return f"cat {shlex.quote(display_path(self.path))}" if self.path is not None else None

    def console_text(self) -> str:
        """What the console that started the dashboard shows (Jenkins style)."""
        rule = "=" * 72
        lines = [rule, "First start: no dashboard user existed, so this one-time login was created:", "",
                 f"    user:      {self.user}"]
        if self.password:
            lines.append(f"    password:  {self.password}")
        if self.read_command:
            lines += ["", f"It is also in {display_path(self.path)} (readable only by this account):",
                      f"    {self.read_command}",
                      "Log in with it; the dashboard then asks for a new password and deletes the file."]
        elif self.password:
            lines += ["", "It is shown only this once and stored nowhere (the backup root keeps only its hash):",
                      "note it now. Log in with it; the dashboard then asks for a new password."]
        else:
            lines += ["", "Its one-time password was shown once, when it was made, and is stored nowhere (the "
                          "backup root keeps only its hash)."]
        lines += [f"Or set your own admin password now: {python_command()} -m backup_core set-password "
                  f"{self.user}",
                  rule]
        return "\n".join(lines)


def initial_password_path(settings) -> "Path | None":
    """Where the one-time password is kept: a local path; None for an object store (never stored there)."""
    where = UserFiles(settings).where(INITIAL_PASSWORD_FILE)
    return None if "://" in where else Path(where)


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
        if path is None:
            # an object store never keeps it (an older version did, in plain text: remove that copy)
            if files.read_text(INITIAL_PASSWORD_FILE) is not None:
                files.remove(INITIAL_PASSWORD_FILE)
            if account is None or not account.user.must_change_password:
                return None
            return InitialPassword(INITIAL_ADMIN, None, None, created=False)
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
                if path is not None:
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
                 initial=True, file=str(path) if path is not None else None,
                 reason="first start: no user existed")
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


