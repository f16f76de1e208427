"""Plain cells: the per-type table, spreadsheet safety and strict reading."""

from __future__ import annotations

import csv
import io
import re

import bson
import pytest
from bson import Decimal128
from hypothesis import given
from hypothesis import strategies as st

from backup_core import codec
from backup_core.codec import cells
from backup_core.errors import CodecError

from ..strategies import scalars
from .support import csv_roundtrip, raw_collections

_NUMBER = re.compile(r"^-(\d+(\.\d*)?([eE][-+]?\d+)?|inf|nan|Infinity|NaN|\d*\.\d+([eE][-+]?\d+)?)$")


@given(raw_collections)
def test_no_cell_runs_as_a_spreadsheet_formula(raws):
    schema, text, _ = csv_roundtrip(raws)
    for row in list(csv.reader(io.StringIO(text, newline="")))[0:]:
        for cell in row:
            if cell and cell[0] in "=+@\t\r":
                pytest.fail(f"cell {cell[:40]!r} would run as a formula")
            if cell.startswith("-"):
                # only plain negative numbers may start with '-'
                assert _NUMBER.match(cell), cell[:40]


def test_the_table_is_format_version_1():
    """Every cell type version 1 wrote stays readable; each is described once."""
    assert codec.CELL_TYPES == {"string", "int32", "int64", "double", "bool", "date", "objectId", "decimal", "null",
                                "json"}
    assert codec.PLAIN_TYPES == {ct.bson_type: ct.name for ct in cells.PLAIN}
    for attribute in ("name", "bson_type"):
        assert len({getattr(ct, attribute) for ct in cells.PLAIN}) == len(cells.PLAIN), attribute
    assert {ct.name: ct.wrapper for ct in cells.PLAIN if ct.wrapper} == {
        "int64": "$numberLong", "date": "$date", "objectId": "$oid", "decimal": "$numberDecimal"}


@given(scalars)
def test_each_cell_type_reads_back_the_bytes_it_wrote(value):
    """Per table entry: text -> bytes undoes bytes -> text."""
    raw = bson.encode({"v": value})
    (t, _name, vs, ve), = codec.iter_elements(raw)
    ct = cells.BY_BSON_TYPE.get(t)
    if ct is None:
        return  # no plain form: a json cell
    text = ct.text_from_bytes(raw, vs, ve)
    if text is None:
        return  # a value of this type that only the dialect holds
    assert ct.bytes_from_text(text) == raw[vs:ve]


decimal_texts = st.one_of(
    st.from_regex(r"-?\d{1,40}(\.\d{0,40})?(E[-+]\d{1,5})?", fullmatch=True),
    st.decimals(allow_nan=True).map(str),
    st.text(max_size=12),
)


@given(decimal_texts)
def test_decimal_cells_parse_as_decimal128_does(text):
    def outcome(parse):
        try:
            return parse(text)
        except Exception as exc:  # noqa: BLE001 - the same refusal is what matters
            return type(exc)

    assert outcome(cells.parse_decimal) == outcome(lambda s: Decimal128(s).bid)


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
