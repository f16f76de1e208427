"""Dashboard users: argon2 password hashes, roles, lock-out after repeated failures.

Only hashes are ever stored (argon2id via argon2-cffi); a password lives in
memory just long enough to be hashed or checked and is never logged.

Users come from three places, the first that names a user wins:

1. ``users.json`` in the backup root's shared state (``<root>/.auth/`` of a
   local folder, mode 0600, replaced atomically under a ``filelock``;
   ``<prefix>/.auth/`` of an object store, under a lock object), written by
   ``python -m backup_core set-password USER [--role admin|viewer]``;
2. ``.streamlit/secrets.toml``, section ``[auth.users.<name>]`` with
   ``password_hash`` and ``role``;
3. the environment: ``BACKUP_ADMIN_USER`` plus ``BACKUP_ADMIN_PASSWORD_HASH``
   (an admin; also read from the top level of secrets.toml).

Roles: ``admin`` may do everything, ``viewer`` may only look.

Lock-out: ``MAX_FAILURES`` failed logins for one name within
``FAILURE_WINDOW_S`` lock that name for ``LOCKOUT_S``, even with the right
password. The state lives in ``<backup_root>/.auth/lockout.json`` so it
survives restarts and is shared by every dashboard process, host and the CLI.
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

First start: when no user exists anywhere, :func:`ensure_initial_admin`
creates the admin ``admin`` with a random one-time password (as Jenkins and
Grafana do), stores its hash flagged ``must_change_password`` and writes the
password to ``<backup_root>/.auth/initial_admin_password`` (mode 0600), whose
path (and the password) the dashboard's start prints on the console. The
first login with it must choose a new password (:func:`change_password`,
which any logged-in users.json user may use); that, or ``set-password admin``,
deletes the file and the one-time password stops working.

Every login attempt is audited (action ``login``, outcome ``ok``/``error``),
and so are sessions ended by :func:`refresh` (action ``logout`` with a
``reason``), ``unlock``, the one-time password's creation (``set-password``
with ``initial``) and ``change-password``.


Modules: ``common`` (users, roles, hashing, where the files are), ``users``
(the sources, ``set_password``), ``login`` (``authenticate``, the lock-out,
``unlock``), ``sessions`` (``refresh``), ``first_start`` (the one-time admin,
``change_password``).
"""

from .common import (AUTH_DIR, INITIAL_ADMIN, INITIAL_PASSWORD_FILE, INVALID_LOGIN, LOCKOUT_FILE, LOCKOUT_S,
                     MAX_FAILURES, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, ROLES, USER_RE, USERS_FILE, User,
                     UserFiles, auth_dir, display_path, hash_password, python_command, unlock_command, users_path)
from .first_start import InitialPassword, change_password, ensure_initial_admin, initial_password_path
from .login import UnlockResult, authenticate, lockout_remaining, require_admin, unlock
from .sessions import SessionCheck, refresh
from .users import has_users, list_users, set_password

__all__ = ["AUTH_DIR", "INITIAL_ADMIN", "INITIAL_PASSWORD_FILE", "INVALID_LOGIN", "LOCKOUT_FILE", "LOCKOUT_S",
           "MAX_FAILURES", "MAX_PASSWORD_LENGTH", "MIN_PASSWORD_LENGTH", "ROLES", "USER_RE", "USERS_FILE", "User",
           "UserFiles", "auth_dir", "display_path", "hash_password", "python_command", "unlock_command",
           "users_path", "InitialPassword", "change_password", "ensure_initial_admin", "initial_password_path",
           "UnlockResult", "authenticate", "lockout_remaining", "require_admin", "unlock", "SessionCheck",
           "refresh", "has_users", "list_users", "set_password"]
