"""``export ID --out FILE.zip``: write one backup as a single zip file (to move it elsewhere)."""

from __future__ import annotations

from pathlib import Path

from ..context import open_store
from ..errors import UsageError
from ..transfer import export_backup


def register(sub):
    p = sub.add_parser("export", help="write a backup as one zip file",
                       description="Write backup ID as one zip file holding its manifest and CSV files, "
                                   "byte for byte; `import` on another machine verifies and lists it.")
    p.add_argument("backup_id", metavar="ID")
    p.add_argument("--out", metavar="FILE.zip", help="where to write the zip (default: ./ID.zip)")
    p.add_argument("--force", action="store_true", help="overwrite FILE.zip if it exists")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    out = Path(args.out or f"{args.backup_id}.zip")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / (args.backup_id + '.zip')}")
    if out.exists() and not args.force:
        raise UsageError(f"{out} already exists; pass --force to overwrite it")
    return export_backup(open_store(settings), args.backup_id, out, user=settings.user)
