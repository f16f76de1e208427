"""Shared by the codec tests: a CSV round trip as a backup and a restore do it."""

from __future__ import annotations

import csv
import io
import json

from backup_core import codec

from ..strategies import collections, encode

# collections of raw BSON documents
raw_collections = collections.map(lambda docs: [encode(d) for d in docs])


def csv_roundtrip(raws: list[bytes]) -> tuple[codec.Schema, str, list[bytes]]:
    """Encode to CSV text, parse it back with the csv module, decode; schema via JSON like the manifest."""
    schema, rows = codec.encode_documents(raws)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(schema.header())
    w.writerows(rows)
    text = buf.getvalue()
    parsed = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    assert parsed[0] == schema.header()
    schema2 = codec.Schema.from_json(json.loads(json.dumps(schema.to_json())))
    return schema, text, codec.decode_rows(schema2, parsed[1:])
