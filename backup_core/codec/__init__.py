"""Lossless, readable BSON <-> CSV encoding (format version 1, see docs/FORMAT.md).

The codec works on raw BSON bytes, never on decoded Python objects alone, so
every document comes back byte-for-byte: field order, Int32 vs Int64 vs
double, Decimal128 bit patterns, NaN payloads, -0.0, and the deprecated types
(Symbol, DBPointer, Undefined) that pymongo would convert on decode.

Shape of a CSV file:

* one column per top-level field, in first-seen order, then one trailing
  meta column (``__bson_row__``);
* each column has a type (recorded in the manifest). Cells of the column's
  type are plain text: strings as they are, numbers as numbers, dates as
  ISO-8601 with milliseconds and ``Z``, ObjectIds as hex, booleans as
  ``true``/``false``. Column type ``json`` holds a lossless JSON dialect
  for nested documents, arrays and rare types;
* the meta cell is empty for typical rows. Otherwise it is a JSON object with
  optional keys ``missing`` (column indexes absent from the document),
  ``types`` (column index -> type of a cell that differs from its column,
  ``null`` included), ``order`` (column indexes in the document's field
  order, when it differs from column order) and ``doc`` (the whole document
  in the JSON dialect, for documents with duplicate field names).

A string cell starting with one of ``= + - @ '`` TAB or CR gets a leading
``'`` (removed on decode), so a spreadsheet never runs it as a formula.

Modules, by job:

* ``bsonwalk``: raw BSON: element types, walking a document, writing elements;
* ``cells``: the table of plain cell types, each with its conversions between
  BSON bytes, cell text and pymongo objects (the one place per-type rules live);
* ``dialect``: the JSON dialect, raw BSON <-> JSON text;
* ``accel``: the optional compiled accelerator (``_speedups.c``), its report and counters;
* ``schema``: columns and their types (the first pass);
* ``rows``: one document <-> one CSV row, compiled accelerator first, exact walker as fallback.
"""

from __future__ import annotations

from ..errors import CodecError
from . import accel
from .bsonwalk import (MAX_BSON_SIZE, T_ARRAY, T_BINARY, T_BOOL, T_CODE, T_CODE_W_SCOPE, T_DATE, T_DBPOINTER,
                       T_DECIMAL, T_DOC, T_DOUBLE, T_INT32, T_INT64, T_MAXKEY, T_MINKEY, T_NULL, T_OID, T_REGEX,
                       T_STRING, T_SYMBOL, T_TIMESTAMP, T_UNDEFINED, iter_elements)
from .cells import CELL_TYPES, FORMULA_CHARS, PLAIN_TYPES
from .dialect import from_json_text, to_json_text, value_to_json_text
from .rows import MAX_CELL_CHARS, RowDecoder, RowEncoder, decode_rows, encode_documents
from .schema import META_COLUMN, Column, Schema, SchemaBuilder

FORMAT_VERSION = 1


def accelerator() -> dict:
    """Which codec path is active: ``{"compiled": bool, "reason": str}`` (see ``accel.info``)."""
    return accel.info()


__all__ = [
    "FORMAT_VERSION", "META_COLUMN", "MAX_BSON_SIZE", "MAX_CELL_CHARS", "FORMULA_CHARS", "PLAIN_TYPES", "CELL_TYPES",
    "T_DOUBLE", "T_STRING", "T_DOC", "T_ARRAY", "T_BINARY", "T_UNDEFINED", "T_OID", "T_BOOL", "T_DATE", "T_NULL",
    "T_REGEX", "T_DBPOINTER", "T_CODE", "T_SYMBOL", "T_CODE_W_SCOPE", "T_INT32", "T_TIMESTAMP", "T_INT64",
    "T_DECIMAL", "T_MINKEY", "T_MAXKEY",
    "iter_elements", "to_json_text", "value_to_json_text", "from_json_text",
    "Column", "Schema", "SchemaBuilder", "RowEncoder", "RowDecoder", "encode_documents", "decode_rows",
    "CodecError", "accel", "accelerator",
]
