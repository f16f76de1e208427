"""``set-password USER [--role admin|viewer]``: create a dashboard user or change its password.

The password comes from stdin when stdin is not a terminal (its first line,
for scripts: ``printf '%s\\n' "$PW" | python -m backup_core set-password admin``),
otherwise from two hidden prompts that must match. Only an argon2 hash is
stored, in ``<backup_root>/.auth/users.json``. ``--print-hash`` stores
nothing and prints the hash instead, for ``.streamlit/secrets.toml``
(``[auth.users.NAME] password_hash = "..."``) or ``BACKUP_ADMIN_PASSWORD_HASH``.
"""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass

from .. import auth
from ..errors import UsageError


@dataclass
class SetPasswordResult:
    user: str
    role: str
    path: str | None
    password_hash: str | None = None

    def to_json(self) -> dict:
        out = {"user": self.user, "role": self.role, "path": self.path}
        if self.password_hash:
            out["password_hash"] = self.password_hash
        return out

    def to_text(self) -> str:
        if self.password_hash:
            return self.password_hash
        return f"password set for {self.role} {self.user!r} in {self.path}"


def register(sub):
    p = sub.add_parser("set-password", help="create a dashboard user or change its password",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("user", metavar="USER")
    p.add_argument("--role", choices=auth.ROLES, default="admin", help="admin (default) or viewer (read-only)")
    p.add_argument("--print-hash", action="store_true",
                   help="store nothing; print the argon2 hash for secrets.toml or the environment")
    p.set_defaults(handler=run)
    return p


def read_password(stdin=None) -> str:
    stdin = stdin or sys.stdin
    if stdin is None or not stdin.isatty():
        line = (stdin.readline() if stdin is not None else "")
        # only the line break goes: spaces may be part of a password
        return line.rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if len(first) < auth.MIN_PASSWORD_LENGTH:
        raise UsageError("the password is empty" if not first else
                         f"the password is too short: use at least {auth.MIN_PASSWORD_LENGTH} characters")
    if getpass.getpass("Repeat password: ") != first:
        raise UsageError("the passwords do not match")
    return first


def run(args, settings):
    auth.common._check_name(args.user)
    password = read_password()
    if args.print_hash:
        return SetPasswordResult(args.user, args.role, None, auth.hash_password(password))
    user = auth.set_password(settings, args.user, password, role=args.role)
    return SetPasswordResult(user.name, user.role, str(auth.users_path(settings)))
