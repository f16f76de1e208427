"""``drill [ID | --latest] [--target-uri URI] [--target-db NAME]``: prove that a backup restores, and time it.

Restores the backup into a scratch database no one uses (on the database's
own server unless ``--target-uri`` or ``BACKUP_DRILL_URI`` names another),
proves every collection (count, every document byte for byte, indexes and
options), reports the time to restore and drops the scratch database. Exit 0
only when everything matched; otherwise 11 and one line per failing
collection on stderr (see ``backup_core.drill``).
"""

from __future__ import annotations

from ..drill import drill_backup
from ..errors import UsageError
from ..progress import terminal_progress


def register(sub):
    p = sub.add_parser("drill", help="restore a backup into a scratch database, prove it, time it, drop it",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("backup_id", metavar="ID", nargs="?", help="the backup to drill (default: the newest)")
    p.add_argument("--latest", action="store_true", help="drill the newest backup")
    p.add_argument("--target-uri", metavar="URI",
                   help="MongoDB server to restore into (env BACKUP_DRILL_URI; default: the database's own)")
    p.add_argument("--target-db", metavar="NAME",
                   help="name of the scratch database, starting with drill_ (default: "
                        "drill_<db>_<id>_<random>); an existing database is refused unless it is a drill "
                        "database left by a killed drill")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    if args.backup_id and args.latest:
        raise UsageError("give a backup ID or --latest, not both")
    progress = terminal_progress("drill")
    try:
        return drill_backup(settings, args.backup_id, target_uri=args.target_uri, target_db=args.target_db,
                            progress=progress)
    finally:
        if progress is not None:
            progress.close()
