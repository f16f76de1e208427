"""Shared by the codec tests: a CSV round trip as a backup and a restore do it."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from bson import Decimal128, Int64, ObjectId

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


def equipment_doc(i: int) -> dict:
    """A document like the demo's Equipment collection."""
    doc = {
        "_id": ObjectId(i.to_bytes(12, "big")),
        "asset_id": f"EQ-{i:05d}",
        "name": "Liebherr -80 °C freezer",
        "category": ["freezer", "centrifuge", "microscope"][i % 3],
        "purchase_date": dt.datetime(2016, 3, 26, 2, 28, 54, 861000) + dt.timedelta(days=i),
        "price": Decimal128(f"{72768 + i}.67"),
        "weight_kg": 175.661 + i,
        "quantity": i % 4,
        "usage_ms": Int64(19396461918169 + i),
        "calibration_required": i % 2 == 0,
        "tags": ["shared", "🔥 hot"][: i % 3],
        "location": {"building": "C", "room": f"C0.{i % 20}", "coordinates": [48.731531, 2.14664]},
        "assigned_to": None if i % 5 == 0 else "Ana Müller",  # a null: a type note in the meta cell
        "maintenance": [{"date": dt.datetime(2023, 1, 1 + i % 28), "by": "=tech", "cost": Decimal128("12.50")}],
        "notes": "+33 1 23 45 67 89 (supplier hotline)" if i % 7 == 0 else "Handle with care",
    }
    if i % 4 == 0:
        doc["warranty_until"] = dt.datetime(2030, 1, 1)  # missing from most documents
    if i % 6 == 0:
        doc["notes"] = doc.pop("notes")  # another field order
    return doc
