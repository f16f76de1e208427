"""Whole collections through CSV and back: byte for byte, for any BSON, readable in pandas."""

from __future__ import annotations

import csv
import glob
import io
import json
from pathlib import Path

import bson
import pandas as pd
from hypothesis import given

from backup_core import codec
from backup_core.store import write_csv

from .support import csv_roundtrip, raw_collections

CORPUS = Path(__file__).resolve().parent / "bson_corpus"  # vendored: see its README.md


@given(raw_collections)
def test_any_collection_roundtrips_byte_for_byte(raws):
    _schema, _text, back = csv_roundtrip(raws)
    assert back == raws


@given(raw_collections)
def test_pandas_reads_one_row_per_document(raws):
    _schema, text, _ = csv_roundtrip(raws)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert len(frame) == len(raws)


def test_bson_corpus_valid_cases_roundtrip():
    files = sorted(glob.glob(str(CORPUS / "*.json")))
    assert files, f"BSON corpus not found at {CORPUS}"
    cases = 0
    for f in files:
        for case in json.load(open(f)).get("valid", []):
            raw = bytes.fromhex(case["canonical_bson"])
            _s, _t, back = csv_roundtrip([raw])
            assert back == [raw], f"{Path(f).name}: {case['description']}"
            cases += 1
    assert cases == 728  # including Symbol, DBPointer and Undefined, preserved exactly


def test_typical_rows_are_plain(tmp_path):
    """Homogeneous columns give clean cells and an empty meta column."""
    import datetime as dt
    from bson import Decimal128, Int64, ObjectId

    docs = [bson.encode({"_id": ObjectId(b"a" * 12), "name": "=SUM(A1)", "n": 5, "big": Int64(7), "x": 1.5,
                         "price": Decimal128("10.50"), "at": dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
                         "ok": True, "tags": ["a", "b"]})]
    schema, text, back = csv_roundtrip(docs)
    assert back == docs
    header, row = list(csv.reader(io.StringIO(text, newline="")))
    assert header == ["_id", "name", "n", "big", "x", "price", "at", "ok", "tags", codec.META_COLUMN]
    assert row == ["616161616161616161616161", "'=SUM(A1)", "5", "7", "1.5", "10.50",
                   "2024-05-06T07:08:09.123Z", "true", '["a","b"]', ""]
    assert [c.type for c in schema.columns] == ["objectId", "string", "int32", "int64", "double", "decimal",
                                                "date", "bool", "json"]


def test_null_missing_and_empty_string_are_distinct():
    docs = [bson.encode(d) for d in ({"_id": 1, "s": "x"}, {"_id": 2, "s": ""}, {"_id": 3, "s": None}, {"_id": 4})]
    _schema, text, back = csv_roundtrip(docs)
    assert back == docs
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert [r[1] for r in rows] == ["x", "", "", ""]
    assert rows[1][2] == ""  # empty string needs no note
    assert json.loads(rows[2][2]) == {"types": {"1": "null"}}
    assert json.loads(rows[3][2]) == {"missing": [1]}


def test_field_order_and_duplicate_names_are_kept():
    from bson.son import SON

    docs = [bson.encode(SON([("_id", 1), ("a", 1), ("b", 2)])), bson.encode(SON([("b", 2), ("_id", 2), ("a", 1)]))]
    dup = b"".join([b"\x10a\x00\x01\x00\x00\x00", b"\x10a\x00\x02\x00\x00\x00"])
    dup = len(dup + b"\x00\x00\x00\x00\x00").to_bytes(4, "little") + dup + b"\x00"
    _s, _t, back = csv_roundtrip(docs + [dup])
    assert back == docs + [dup]


def test_write_collection_streams_to_a_file_and_hashes_it(tmp_path):
    import hashlib

    raws = [bson.encode({"_id": i, "v": "x" * i}) for i in range(50)]
    for compress in (False, True):
        out = tmp_path / f"c{compress}.csv"
        with out.open("wb") as fh:
            written = write_csv(iter(raws), fh, tmp_path / "spill", compress=compress)
        assert written.count == 50
        assert written.bytes == out.stat().st_size
        assert written.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
        assert not (tmp_path / "spill").exists()
        frame = pd.read_csv(out, compression="gzip" if compress else None)
        assert len(frame) == 50 and list(frame["_id"]) == list(range(50))
