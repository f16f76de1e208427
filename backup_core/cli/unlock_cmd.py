"""``unlock USER``: lift the lock-out of a dashboard user after too many failed logins.

Forgets the user's recent failed logins and any lock-out, at once, for every
dashboard process sharing this backup root (the state is
``<backup_root>/.auth/lockout.json``). Works for any name, known or not: an
unknown or unlocked name is reported as not locked. Audited (action
``unlock``). Use the same backup root as the dashboard (``--root`` or
``BACKUP_ROOT``).
"""

from __future__ import annotations

from .. import auth


def register(sub):
    p = sub.add_parser("unlock", help="lift the lock-out of a dashboard user",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("user", metavar="USER")
    p.set_defaults(handler=run)
    return p


def run(args, settings) -> auth.UnlockResult:
    return auth.unlock(settings, args.user)
