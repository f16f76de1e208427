"""``import FILE.zip [--max-mb N]``: check, verify and list a backup exported elsewhere.

Unsafe or damaged archives are refused with a one-line reason and nothing is
listed (see ``backup_core.transfer``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..context import open_store
from ..errors import UsageError
from ..transfer import DEFAULT_MAX_MB, import_backup


def register(sub):
    p = sub.add_parser("import", help="verify a backup zip file and add it to the backups",
                       description=__doc__.split("\n\n", 1)[1])
    p.add_argument("file", metavar="FILE.zip")
    p.add_argument("--max-mb", type=float, default=None, metavar="N",
                   help=f"largest archive accepted, in MB (env BACKUP_IMPORT_MAX_MB; default {DEFAULT_MAX_MB})")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    max_bytes = None
    if args.max_mb is not None:
        if not (args.max_mb > 0 and math.isfinite(args.max_mb)):  # also refuses nan and inf
            raise UsageError(f"--max-mb must be a positive number, got {args.max_mb:g}")
        max_bytes = int(args.max_mb * 1024 * 1024)
    if max_bytes is None:
        max_bytes = settings.import_max_bytes
    return import_backup(open_store(settings), Path(args.file), max_bytes=max_bytes, user=settings.user)
