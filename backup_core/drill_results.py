"""What restore drills found: the last result of every backup, and the summary status and ``/metrics`` show.

Manifests are immutable, so a drill's result is kept beside the backups, in
``drill_results``, a collection of the metadata database (``settings.meta_db``
on the live database's server, like the scheduler's state): one document per
backup root, database and backup, replaced by each drill of that backup
(when, passed or failed, how long, the failures). ``list --json`` shows each
backup's (``drill``), ``status --json`` and ``/metrics`` the summary:
the last drill, and the last one that passed ("last proven restorable").

A backup root is named as the scheduler names it (``metadb.scope_of``: a
folder by its absolute path), so every host and every entry point finds
the same results; a copy of a backup in another root has results of its own
(drilling the copy proves the copy).
"""

from __future__ import annotations

import logging

from pymongo import DESCENDING

from .config import Settings
from .errors import DatabaseUnavailable
from .timeutil import parse_iso

log = logging.getLogger(__name__)

RESULTS = "drill_results"
FIELDS = ("backup_id", "ok", "at", "started_at", "duration_s", "restore_s", "documents", "docs_per_s",
          "failures", "trigger", "user", "target", "server")


def _scope(settings: Settings):
    from .scheduler.metadb import scope_of  # late: the scheduler package imports a lot

    return scope_of(settings)


def record(settings: Settings, result: dict) -> bool:
    """Keep ``result`` (``DrillResult.summary()``) as its backup's last drill. Never raises; False if not kept."""
    from .scheduler.metadb import meta

    scope = _scope(settings)
    doc = {**{k: result.get(k) for k in FIELDS}, **scope.fields()}
    try:
        with meta(settings, "recording the drill result") as db:
            coll = db[RESULTS]
            coll.create_index([("root", 1), ("database", 1), ("at", -1)], name="scope_at")
            coll.replace_one({"_id": f"{scope.id}|{result['backup_id']}"}, doc, upsert=True)
    except DatabaseUnavailable as exc:
        log.warning("cannot record the drill of %s: %s", result.get("backup_id"), exc)
        return False
    return True


def _view(doc: dict) -> dict:
    return {k: doc.get(k) for k in FIELDS}


def last_per_backup(settings: Settings) -> dict[str, dict]:
    """backup_id -> its last drill result, for this root and database. Raises ``DatabaseUnavailable``."""
    from .scheduler.metadb import meta

    scope = _scope(settings)
    with meta(settings, "reading the drill results") as db:
        return {d["backup_id"]: _view(d) for d in db[RESULTS].find(scope.fields())
                if isinstance(d.get("backup_id"), str)}


def summary(settings: Settings) -> dict:
    """The last drill and the last passed one, with the sentence ``status`` shows. Never raises.

    ``available: false`` (with ``error``) when the metadata database cannot be reached.
    """
    from .scheduler.metadb import meta

    scope = _scope(settings)
    try:
        with meta(settings, "reading the drill results") as db:
            coll = db[RESULTS]
            last = coll.find_one(scope.fields(), sort=[("at", DESCENDING)])
            passed = coll.find_one({**scope.fields(), "ok": True}, sort=[("at", DESCENDING)])
    except DatabaseUnavailable as exc:
        return {"available": False, "error": str(exc), "last": None, "last_success": None,
                "last_success_unix": None, "proven": "unknown (the metadata database cannot be reached)"}
    last_view = _view(last) if last else None
    ok_view = _view(passed) if passed else None
    when = parse_iso(ok_view["at"]) if ok_view else None
    return {"available": True, "error": None, "last": last_view, "last_success": ok_view,
            "last_success_unix": round(when.timestamp(), 3) if when else None,
            "proven": proven_text(ok_view)}


def proven_text(passed: dict | None) -> str:
    """``last proven restorable: <id> at <time>, restore took N s`` (or that none was)."""
    if not passed:
        return "no backup proven restorable yet (run `python -m backup_core drill --latest`)"
    return (f"last proven restorable: {passed['backup_id']} at {passed['at']}, "
            f"restore took {float(passed.get('restore_s') or 0):.2f} s")
