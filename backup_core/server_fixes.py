"""Fixes the embedded server applies to mongoeco's wire server, so it answers like MongoDB at any size.

The product talks to the embedded server exactly as to a real MongoDB; these
patches change how the *server* executes a command, never what the product
sends. ``apply()`` is called once by ``embedded.serve`` before the server
starts; a test checks that each patch still applies to the pinned mongoeco.

- ``insert``: mongoeco 4.11 runs the wire ``insert`` command one document at
  a time, and each single insert scans the whole collection for an equal
  ``_id`` first, so inserting n documents costs O(n^2): a replace-restore of
  100 000 documents (its staging collection is filled by ``insert``) would
  run for days. Here the command runs as one ``insert_many``, mongoeco's own
  batch path (one lookup of the batch's keys), with the same results: the
  documents inserted in order, an ordered insert stopping at the first
  failing document, every failure reported as a write error at its index.
- ``listDatabases``, ``dbStats``, ``collStats``: sized exactly for every BSON
  type (``_size_every_bson_type``).
"""

from __future__ import annotations

from typing import Any

import bson

_APPLIED = False


def apply() -> None:
    """Patch mongoeco (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _batch_inserts()
    _size_every_bson_type()
    _APPLIED = True


def _batch_inserts() -> None:
    from mongoeco.api._async import _database_admin_write_commands as commands
    from mongoeco.api._command_bson import command_boolean
    from mongoeco.errors import BulkWriteError
    from mongoeco.types import WriteCommandResult, WriteErrorEntry

    service = commands.DatabaseAdminWriteCommandService
    one_at_a_time = service.command_insert

    async def command_insert(self, spec, *, session=None):
        documents = self._admin._normalize_insert_documents(spec.get("documents"))
        if len(documents) < 2 or not all(isinstance(d, dict) for d in documents):
            return await one_at_a_time(self, spec, session=session)
        collection_name = self._admin._require_collection_name(spec.get("insert"), "insert")
        ordered = self._admin._normalize_ordered_from_command(spec.get("ordered"))
        bypass = command_boolean(spec.get("bypassDocumentValidation", False), "bypassDocumentValidation",
                                 numeric=True)
        acknowledged = commands.write_command_acknowledged(spec, dialect=self._admin._mongodb_dialect.key)
        collection = self._admin._database.get_collection(collection_name)
        try:
            result = await collection.insert_many(documents, ordered=ordered, bypass_document_validation=bypass,
                                                  session=session)
            done = WriteCommandResult(count=len(result.inserted_ids))
        except BulkWriteError as exc:
            details = exc.details or {}
            errors = [WriteErrorEntry(index=e["index"], errmsg=e.get("errmsg", ""), code=e.get("code"),
                                      details={k: v for k, v in e.items()
                                               if k not in ("index", "errmsg", "code", "op")} or None)
                      for e in details.get("writeErrors", [])]
            done = WriteCommandResult(count=int(details.get("nInserted", 0)), write_errors=errors or None)
        return commands._write_command_result(done, acknowledged=acknowledged)

    command_insert.__doc__ = "The wire insert command as one batch (backup_core.server_fixes)."
    command_insert.original = one_at_a_time  # type: ignore[attr-defined]
    service.command_insert = command_insert


def _size_every_bson_type() -> None:
    """Make ``listDatabases``, ``dbStats`` and ``collStats`` answer whatever the data holds.

    mongoeco (4.11) sizes documents for these commands with the sizer of its
    ``$bsonSize`` operator, which knows no Decimal128 (nor MinKey, MaxKey,
    Code, DBPointer): once any database holds one, the commands fail with
    "$bsonSize cannot encode value of type Decimal128", so pymongo's
    ``list_database_names`` and mongosh's ``show dbs`` fail. Real MongoDB
    answers them. Their sizer is replaced by the exact one (the length of the
    encoded document), keeping mongoeco's own for the few values only it can
    size; the ``$bsonSize`` operator itself is left as it is.
    """
    try:
        from mongoeco.api._async import _database_admin_namespace as stats
    except ImportError:  # another mongoeco layout: tests/test_embedded.py says whether it still fails
        return
    own = getattr(stats, "_bson_document_size", None)
    if own is None or getattr(own, "exact_bson_size", False):
        return

    def size(document: Any) -> int:
        try:
            return len(bson.encode(document))
        except Exception:  # noqa: BLE001 - a value of mongoeco's own (e.g. its undefined)
            return own(document)

    size.exact_bson_size = True  # type: ignore[attr-defined]
    stats._bson_document_size = size
