"""Local spool folders: where a writer keeps a part (and the raw documents it learns from) before saving it.

Each writer gets ``<temp>/spool-<pid>-<pid start>-<random>/``: for a local
root ``<temp>`` is ``<root>/tmp`` (same filesystem: saving a part is a hard
link, no copy), for an object store a folder of its own in the cache
(``BACKUP_CACHE_DIR``, default ``~/.cache/backup_core``). When a key is set
nothing in it is plaintext: parts are written encrypted, and the raw BSON
spilled while the columns are learned is encrypted with a key that only lives
in the writer's memory. A spool whose process is gone (killed) is removed by
the next locked operation and shown by ``status`` until then.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
from pathlib import Path

from ..errors import StorageError
from ..locks import process_alive, process_start_time

_SPOOL_RE = re.compile(r"^(?:spool|\.save)-(\d+)(?:-(\d+))?-[0-9a-f]+$")  # index-cache/ is no leftover


def cache_root() -> Path:
    from ..config import cache_dir

    return cache_dir()


def temp_dir_for(backend) -> Path:
    """The local temporary area of a backend's root (created private)."""
    local = backend.local_temp()
    if local is not None:
        return local
    folder = cache_root() / hashlib.sha256(backend.identity.encode()).hexdigest()[:16] / "tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the local spool folder {folder}: {exc.strerror}",
                           hint="set BACKUP_CACHE_DIR to a writable folder") from None
    return folder


def new_spool(backend) -> Path:
    started = process_start_time() or 0
    folder = temp_dir_for(backend) / f"spool-{os.getpid()}-{int(started)}-{secrets.token_hex(4)}"
    try:
        folder.mkdir(mode=0o700)
    except OSError as exc:
        raise StorageError(f"cannot create the spool folder {folder}: {exc.strerror}") from None
    return folder


def _dead(name: str) -> bool:
    m = _SPOOL_RE.match(name)
    if not m:
        return False
    pid, started = int(m.group(1)), m.group(2)
    alive = process_alive(pid)
    if alive and started is not None:
        now = process_start_time(pid)
        alive = now is None or abs(int(now) - int(started)) <= 1
    return not alive


def leftovers(backend) -> list[Path]:
    """Spools and half-saved files of processes that are gone."""
    try:
        folder = temp_dir_for(backend)
        names = sorted(os.listdir(folder))
    except (OSError, StorageError):
        return []
    return [folder / n for n in names if _dead(n)]


def sweep(backend) -> list[str]:
    removed = []
    for path in leftovers(backend):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed
