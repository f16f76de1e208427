"""Garbage collection and housekeeping of a repository: what goes when backups go, and what killed writers left.

- ``forget``: a backup's manifest first (it disappears at once), then the
  files of its folder;
- ``prune``: mark every data object any manifest refers to, sweep the rest
  (restic's ``prune``, borg's ``compact``), under the exclusive lock; a
  manifest that cannot be read (damaged, or encrypted with a key that is not
  configured) may refer to anything, so it blocks the sweep instead of being
  ignored. No reference count is kept that a crash could leave wrong;
- ``sweep`` and ``leftovers``: the spools of killed writers, and local backup
  folders that never got a manifest (removed under the lock, or only shown);
- ``usage``: the bytes the backups take, each object once.

Each takes the ``Repository`` it works on (whose methods of the same names
call them) and reads the backups through it, its listing cache included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..locks import process_alive
from . import spool
from .layout import ID_RE, MANIFEST, MANIFEST_ENC, WEEKDAYS

_LEGACY_TEMP_RE = re.compile(r"^\.(tmp|trash)-.*-(\d+)$")


@dataclass
class PruneResult:
    """What garbage collection removed, or why it removed nothing."""

    removed: int = 0
    freed_bytes: int = 0
    blocked: list[str] = field(default_factory=list)  # manifests that could not be read: nothing was swept

    def to_json(self) -> dict:
        return {"removed_objects": self.removed, "freed_bytes": self.freed_bytes, "blocked_by": self.blocked}


def forget(repo, infos: list) -> None:
    """Remove the backups ``infos`` (``BackupInfo``) but not their data objects (``prune`` does)."""
    if not infos:
        return
    repo.check_lock(writing=True)
    for info in infos:
        repo.backend.remove(f"{info.day}/{info.backup_id}/{MANIFEST_ENC if info.encrypted else MANIFEST}")
    repo.forget_cached()
    refs, blocked = referenced(repo)
    for info in infos:
        folder = f"{info.day}/{info.backup_id}/"
        views = {folder + p.file for e in info.collections.values() for p in e.own_parts()} \
            if info.manifest.format_version >= 3 else set()
        for entry in list(repo.backend.list(folder)):
            # a readable view is a link, never data; a format 1/2 file may be shared by another backup
            if entry.name in views or (entry.name not in refs and not blocked):
                repo.check_lock(writing=True)
                repo.backend.remove(entry.name)


def referenced(repo) -> tuple[dict[str, set[str]], list[str]]:
    """(object name -> backups referring to it, manifests that cannot be read)."""
    errors: list[str] = []
    locked: list[dict] = []
    refs: dict[str, set[str]] = {}
    for info in repo.list_backups(errors=errors, locked=locked, trust=False):
        for name in info.manifest.objects():
            refs.setdefault(name, set()).add(info.backup_id)
    blocked = errors + [f"{b['day']}/{b['backup_id']}: encrypted with key {b['key_fingerprint']}, which is "
                        "not configured" for b in locked]
    return refs, blocked


def prune(repo) -> PruneResult:
    """Garbage collection: remove every data object no manifest refers to (mark and sweep).

    Needs the exclusive lock. A manifest that cannot be read (damaged, or encrypted with a key that
    is not configured) may refer to anything: then nothing is removed."""
    repo.check_lock(writing=True)
    refs, blocked = referenced(repo)
    result = PruneResult(blocked=blocked)
    if blocked:
        return result
    doomed = [e for e in repo.backend.list("data/") if e.name not in refs]
    for e in doomed:
        repo.check_lock(writing=True)
        repo.backend.remove(e.name)
        result.removed += 1
        result.freed_bytes += e.size
    _trim_index_cache(repo)
    return result


def _trim_index_cache(repo) -> None:
    """This machine's cached document indexes of states that no backup holds any more go too."""
    from .incremental import cache_key

    held = {cache_key(entry.stored_parts()) for info in repo.list_backups(trust=False)
            for entry in info.collections.values() if entry.doc_index is not None}
    repo.index_cache().keep_only(held)


def sweep(repo) -> list[str]:
    """Remove what killed writers left (call under the lock): their spools, and local backup folders
    that never got a manifest."""
    removed = spool.sweep(repo.backend)
    if getattr(repo.backend, "root", None) is not None:
        for day, backup_id in _folders_without_manifest(repo):
            repo.backend.remove_all(f"{day}/{backup_id}/")
            removed.append(repo.location(day, backup_id))
    return removed


def leftovers(repo) -> list[str]:
    """What ``sweep`` would remove, as locations to show."""
    out = [str(p) for p in spool.leftovers(repo.backend)]
    if getattr(repo.backend, "root", None) is not None:
        out += [repo.location(d, b) for d, b in _folders_without_manifest(repo)]
    return out


def _folders_without_manifest(repo) -> list[tuple[str, str]]:
    """Backup folders with no manifest (a killed write), and format 2's ``.tmp-``/``.trash-`` folders
    of processes that are gone."""
    listed = {(d, b) for d, b, _n, _v in repo._manifest_entries()}
    out = []
    for day in WEEKDAYS:
        refused = {name for name, _why in repo.backend.refused(f"{day}/")}  # never swept: reported
        for prefix in repo.backend.prefixes(f"{day}/"):
            name = prefix[len(day) + 1:-1]
            if prefix.rstrip("/") in refused:
                continue
            old = _LEGACY_TEMP_RE.match(name)
            if (ID_RE.match(name) and (day, name) not in listed) or \
                    (old and (old.group(1) == "trash" or not process_alive(int(old.group(2))))):
                out.append((day, name))
    return out


def usage(repo) -> int:
    """Bytes the backups take (each object once, however many backups share it)."""
    total = sum(e.size for e in repo.backend.list("data/"))
    legacy: dict[str, int] = {}
    for info in repo.list_backups(trust=False):
        total += len(info.stored_manifest)
        if info.manifest.format_version < 3:  # formats 1 and 2 keep their files in backup folders
            legacy.update({p.location: p.stored_bytes for e in info.collections.values() for p in e.parts})
    return total + sum(legacy.values())
