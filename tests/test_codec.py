"""The CSV codec: lossless for any BSON, readable in pandas, safe in spreadsheets."""

from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import re
from pathlib import Path
from unittest import mock

import bson
import pandas as pd
import pytest
from hypothesis import given, settings

from backup_core import codec
from backup_core.backup import write_collection
from backup_core.errors import CodecError

from .strategies import collections, documents, encode

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bson-corpus"


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


@given(collections.map(lambda docs: [encode(d) for d in docs]))
def test_any_collection_roundtrips_byte_for_byte(raws):
    _schema, _text, back = csv_roundtrip(raws)
    assert back == raws


@contextlib.contextmanager
def exact_walker_only():
    """Switch off the C fast paths, so every document takes the exact byte walker."""
    with mock.patch.object(codec, "_bson_to_dict", codec._c_unavailable), \
            mock.patch.object(codec, "_dict_to_bson", codec._c_unavailable):
        yield


@settings(max_examples=200)
@given(collections.map(lambda docs: [encode(d) for d in docs]))
def test_fast_paths_and_exact_walker_agree(raws):
    """The C-backed fast paths are an optimisation only: same schema, same CSV, same bytes."""
    schema, text, back = csv_roundtrip(raws)
    with exact_walker_only():
        exact_schema, exact_text, exact_back = csv_roundtrip(raws)
    assert exact_schema.to_json() == schema.to_json()
    assert exact_text == text
    assert exact_back == back == raws


@given(documents.map(encode))
def test_any_document_roundtrips_through_the_json_dialect(raw):
    assert codec.from_json_text(codec.to_json_text(raw)) == raw


_NUMBER = re.compile(r"^-(\d+(\.\d*)?([eE][-+]?\d+)?|inf|nan|Infinity|NaN|\d*\.\d+([eE][-+]?\d+)?)$")


@given(collections.map(lambda docs: [encode(d) for d in docs]))
def test_no_cell_runs_as_a_spreadsheet_formula(raws):
    schema, text, _ = csv_roundtrip(raws)
    for row in list(csv.reader(io.StringIO(text, newline="")))[0:]:
        for cell in row:
            if cell and cell[0] in "=+@\t\r":
                pytest.fail(f"cell {cell[:40]!r} would run as a formula")
            if cell.startswith("-"):
                # only plain negative numbers may start with '-'
                assert _NUMBER.match(cell), cell[:40]


@given(collections.map(lambda docs: [encode(d) for d in docs]))
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


@pytest.mark.parametrize("bad, message", [
    (["1", "x", ""], "int32"),
    (["1", "2", "{"], "JSON"),
    (["1", "2", '{"missing":[5]}'], "every column"),
    (["1", "2", '{"types":{"1":"weird"}}'], "unknown cell type"),
    (["1"], "cells"),
    (["1", "2", '{"doc":"{\\"a\\":1}", "x":1}'], "keys"),
    (["99999999999", "2", ""], "int32"),
])
def test_bad_cells_are_refused_clearly(bad, message):
    schema = codec.Schema([codec.Column("_id", "int32"), codec.Column("n", "int32")])
    with pytest.raises(CodecError, match=message):
        codec.RowDecoder(schema).decode(bad)


def test_oversized_document_is_refused():
    schema = codec.Schema([codec.Column("s", "string")])
    with pytest.raises(CodecError, match="16 MiB"):
        codec.RowDecoder(schema).decode(["x" * (17 * 1024 * 1024), ""])


def test_write_collection_streams_to_a_file_and_hashes_it(tmp_path):
    import hashlib

    raws = [bson.encode({"_id": i, "v": "x" * i}) for i in range(50)]
    for compress in (False, True):
        out = tmp_path / f"c{compress}.csv"
        count, schema, hasher = write_collection(iter(raws), out, tmp_path / "spill", compress=compress)
        assert count == 50
        assert hasher.bytes == out.stat().st_size
        assert hasher.sha256.hexdigest() == hashlib.sha256(out.read_bytes()).hexdigest()
        assert not (tmp_path / "spill").exists()
        frame = pd.read_csv(out, compression="gzip" if compress else None)
        assert len(frame) == 50 and list(frame["_id"]) == list(range(50))
