"""The compiled accelerator (accel.py, _speedups.c): used where it was built, never different from the exact walker.

Every property compares two runs of the same thing: with the accelerator and
with the exact walker only (``testseam.exact_codec()``). Results must be
equal: the same schema, CSV text and decoded bytes, or the same error with
the same message, for valid documents (``tests/strategies``, the BSON corpus,
raw BSON that pymongo cannot make) and damaged ones.
"""

from __future__ import annotations

import glob
import importlib.machinery
import json
import os
import shutil
import struct
import sysconfig
import tracemalloc
from pathlib import Path

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup_core import codec
from backup_core.codec import accel, cells, dialect
from backup_core.errors import CodecError
from backup_core.testseam import exact_codec

from .rawbson import bstr, document, element, mutated
from .rawbson import raw_collections as hard_collections
from .rawbson import raw_documents as hard_documents
from .support import csv_roundtrip, equipment_doc, raw_collections

CORPUS = Path(__file__).resolve().parent / "bson_corpus"  # vendored: see its README.md

needs_compiled = pytest.mark.skipif(accel.speedups is None, reason=accel.info()["reason"])


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except Exception as exc:  # noqa: BLE001 - the same refusal, with the same message, is what matters
        return "error", type(exc).__name__, str(exc)


def two_ways(fn, *args):
    """fn(*args) with the accelerator, and with the exact walker only."""
    compiled = outcome(fn, *args)
    with exact_codec():
        exact = outcome(fn, *args)
    return compiled, exact


def _roundtrip(raws):
    schema, text, back = csv_roundtrip(raws)
    return schema.to_json(), text, back


def _delta(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in accel.stats().items()}


# --------------------------------------------------------------------------
# Used where built, and reported


def _can_build_here() -> bool:
    """A C compiler and the Python headers: where ``pip install -e .`` must build the extension."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) is not None and (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()


def test_the_accelerator_is_used_where_it_was_built():
    """Fails when the extension was built here (or could have been) but is not in use: it no longer
    imports, it is stale (``_speedups.c`` changed since the build), its build broke, or the codec
    stopped calling it. Skipped only on machines that cannot build it."""
    here = Path(accel.__file__).parent
    built_files = [here / f"_speedups{s}" for s in importlib.machinery.EXTENSION_SUFFIXES
                   if (here / f"_speedups{s}").exists()]
    marker = accel.build_marker()
    if not built_files and (marker is None or not marker.get("built")) and not _can_build_here():
        pytest.skip("no C compiler or Python headers here: the codec runs the exact walker")
    if marker is not None and not marker.get("built"):
        pytest.fail(f"the compiled accelerator failed to build on a machine that can build it: {marker.get('error')}")
    assert accel.speedups is not None, accel.info()["reason"]
    report = codec.accelerator()
    assert report["compiled"] is True, report

    raws = [bson.encode(equipment_doc(i)) for i in range(60)]
    before = accel.stats()
    _schema, _text, back = csv_roundtrip(raws)
    assert back == raws
    n = len(raws)
    assert _delta(before) == {"shape_compiled": n, "shape_exact": 0,
                              "encode_compiled": n, "encode_exact": 0,
                              "decode_compiled": n, "decode_exact": 0}


def test_the_report_says_which_path_runs():
    report = codec.accelerator()
    assert set(report) == {"compiled", "reason"}
    assert report["compiled"] is (accel.speedups is not None)
    assert report["reason"]
    with exact_codec():
        off = codec.accelerator()
        assert off["compiled"] is False
        assert ("switched off" in off["reason"]) if accel.speedups is not None else True
    assert codec.accelerator() == report


@needs_compiled
def test_the_seam_switches_the_accelerator_off_and_back_on():
    raws = [bson.encode(equipment_doc(i)) for i in range(10)]
    with pytest.raises(RuntimeError):
        with exact_codec():
            assert not accel.on
            raise RuntimeError
    assert accel.on
    _schema, text, _back = csv_roundtrip(raws)
    before = accel.stats()
    with exact_codec(), exact_codec():  # nested: still off inside, back on after both
        _schema, exact_text, back = csv_roundtrip(raws)
        assert not accel.on
    delta = _delta(before)
    assert delta["encode_compiled"] == delta["decode_compiled"] == delta["shape_compiled"] == 0
    assert delta["encode_exact"] == delta["decode_exact"] == delta["shape_exact"] == len(raws)
    assert back == raws and exact_text == text
    assert accel.on


@needs_compiled
def test_a_stale_build_is_not_used(tmp_path, monkeypatch):
    source = tmp_path / "_speedups.c"
    source.write_text("/* another version */\n")
    monkeypatch.setattr(accel, "SOURCE", source)
    mod, problem = accel._load()
    assert mod is None and "stale" in problem
    monkeypatch.setattr(accel, "SOURCE", tmp_path / "absent.c")  # installed without its source: trusted
    mod, problem = accel._load()
    assert mod is accel.speedups and problem == ""


# --------------------------------------------------------------------------
# Same output as the exact walker, for any document


@needs_compiled
@settings(max_examples=300)
@given(raw_collections)
def test_compiled_and_exact_paths_agree_on_any_collection(raws):
    compiled, exact = two_ways(_roundtrip, raws)
    assert compiled == exact
    assert compiled[0] == "ok" and compiled[1][2] == raws


@needs_compiled
@settings(max_examples=400)
@given(hard_collections)
def test_compiled_and_exact_paths_agree_on_raw_bson_pymongo_cannot_make(raws):
    """Repeated and $-prefixed names at any depth, Symbol/DBPointer/Undefined/code with scope, array element
    names other than 0, 1, 2, any NaN or Decimal128 bits, dates outside years 1..9999, invalid UTF-8."""
    compiled, exact = two_ways(_roundtrip, raws)
    assert compiled == exact
    if compiled[0] == "ok":
        assert compiled[1][2] == raws


@needs_compiled
def test_bson_corpus_valid_and_invalid_cases_agree():
    files = sorted(glob.glob(str(CORPUS / "*.json")))
    assert files, f"BSON corpus not found at {CORPUS}"
    cases = 0
    for f in files:
        data = json.load(open(f))
        for kind in ("valid", "decodeErrors"):
            for case in data.get(kind, []):
                raw = bytes.fromhex(case["canonical_bson" if kind == "valid" else "bson"])
                compiled, exact = two_ways(_roundtrip, [raw])
                where = f"{Path(f).name} {kind}: {case['description']}"
                assert compiled == exact, where
                if kind == "valid":
                    assert compiled[0] == "ok" and compiled[1][2] == [raw], where
                cases += 1
    assert cases == 728 + 75  # valid cases, and invalid BSON (decodeErrors)


def _schema_of(raws):
    builder = codec.SchemaBuilder()
    for raw in raws:
        builder.add(raw)
    return builder.build()


@needs_compiled
@settings(max_examples=400)
@given(hard_collections, st.lists(mutated(), min_size=1, max_size=3))
def test_damaged_documents_are_refused_alike(raws, damaged):
    """Bytes overwritten, lengths changed, truncated: the accelerator hands the document to the exact
    walker, which refuses it (or, where the damage left valid BSON, encodes it) the same way."""
    schema = _schema_of(raws)

    def encode(raw):
        shape = outcome(_schema_of, [raw])
        shape = shape if shape[0] == "error" else ("ok", shape[1].to_json())
        return shape, codec.RowEncoder(schema).encode(raw)

    for raw in damaged:
        compiled, exact = two_ways(encode, raw)
        assert compiled == exact


@pytest.mark.timeout(60)
@pytest.mark.parametrize("raw", [
    # a string whose length points back at its own element: the Python walks looped forever on it
    document([element(2, b"a", struct.pack("<i", -7) + b"x\x00")]),
    document([element(5, b"a", struct.pack("<i", -9) + b"\x00")]),
    document([element(3, b"a", document([element(2, b"b", struct.pack("<i", -7) + b"x\x00")]))]),
], ids=["string", "binary", "nested"])
def test_negative_lengths_are_refused_on_every_path(raw):
    compiled, exact = two_ways(_roundtrip, [raw])
    assert compiled == exact
    assert compiled[:2] == ("error", "CodecError"), compiled


@pytest.mark.parametrize("raw", [
    document([element(2, b"s", bstr(b"\xff"))]),
    document([element(3, b"d", document([element(2, b"s", bstr(b"a\xc3"))]))]),
    document([element(11, b"r", b"\xed\xa0\x80\x00i\x00")]),
    document([element(13, b"c", bstr(b"\xc0\xaf"))]),
], ids=["string", "nested string", "regex", "code"])
def test_invalid_utf8_is_a_codec_error_on_every_path(raw):
    """Not a bare UnicodeDecodeError: callers (backup, verify) handle CodecError."""
    compiled, exact = two_ways(_roundtrip, [raw])
    assert compiled == exact
    assert compiled[:2] == ("error", "CodecError"), compiled


# --------------------------------------------------------------------------
# Decoding: any cell text


_INSERTS = list('"\\${}[],:0123456789-+.eEuU \t\'nNaIfty') + [
    "\\u", "\\ud800", "\\udc00", "\\u0000", "\x00", "é", "🙂", "_", "\\n", "Z", "T", "\ud800"]


@st.composite
def mutated_text(draw, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "upper"]))
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(st.sampled_from(_INSERTS)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        elif op == "replace":
            text = text[:pos] + draw(st.sampled_from(_INSERTS)) + text[pos + 1:]
        elif op == "truncate":
            text = text[:pos]
        else:
            text = text.upper()
    return text


@needs_compiled
@settings(max_examples=400)
@given(st.data())
def test_damaged_rows_are_refused_alike(data):
    """Cells and meta cells of real rows, edited: the same document or the same error on every path."""
    raws = data.draw(st.one_of(raw_collections, hard_collections))
    try:
        schema, rows = codec.encode_documents(raws)
    except CodecError:
        return
    if not rows:
        return
    row = list(data.draw(st.sampled_from(rows)))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(row) - 1))
        row[i] = data.draw(mutated_text(row[i]))
    compiled, exact = two_ways(codec.RowDecoder(schema).decode, row)
    assert compiled == exact


_cell_texts = {
    "int32": st.one_of(st.from_regex(r"[-+ ]?[0-9_]{0,12}\s?", fullmatch=True), st.integers().map(str)),
    "int64": st.one_of(st.from_regex(r"[-+ ]?[0-9_]{0,21}", fullmatch=True), st.integers().map(str)),
    "double": st.one_of(st.from_regex(r"[-+]?[0-9]{0,20}(\.[0-9]{0,20})?([eE][-+]?[0-9]{0,4})?", fullmatch=True),
                        st.sampled_from(["nan", "-nan", "inf", "-inf", "NaN", "Infinity", "1_0", " 1", "١"]),
                        st.floats().map(repr)),
    "decimal": st.one_of(st.from_regex(r"-?[0-9]{0,40}(\.[0-9]{0,40})?(E[-+]?[0-9]{0,5})?", fullmatch=True),
                         st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "1e3", "١٢"]),
                         st.binary(min_size=16, max_size=16).map(lambda b: str(bson.Decimal128.from_bid(b)))),
    "date": st.one_of(st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", fullmatch=True),
                      st.integers(-62135596800000, 253402300799999).map(cells.iso_from_ms),
                      st.sampled_from(["2024-02-30T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
                                       "2024-01-01T24:00:00.000Z", "2024-01-01T00:00:60.000Z",
                                       "2024-01-01 00:00:00.000Z", "2024-01-01T00:00:00.000+", "20240101T000000.000Z"])),
    "objectId": st.one_of(st.binary(min_size=12, max_size=12).map(bytes.hex), st.from_regex(r"[0-9a-fA-F ]{22,26}", fullmatch=True)),
    "bool": st.sampled_from(["true", "false", "True", "1", "", "truex"]),
    "null": st.sampled_from(["", " ", "null"]),
    "string": st.text(max_size=20),
    "json": st.one_of(st.from_regex(r"[-0-9.eE+]{1,12}", fullmatch=True),
                      st.sampled_from(["NaN", "-Infinity", " 1", "1 ", "[1,]", '{"a":1,}', '{"$x":1}', '"\\ud800"',
                                       '{"$numberDouble":"nan"}', '{"$date":{"$numberLong":"1","x":2}}', "tru",
                                       '{"\\u0024numberLong":"1"}', '{"$binary":{"base64":"YR==","subType":"00"}}',
                                       '{"$binary":{"subType":"00","base64":"YQ=="}}', '{"$undefined":1}',
                                       '{"$code":"x","$scope":[]}', '{"$fields":[["a\\u0000",1]]}'])),
}


@needs_compiled
@settings(max_examples=300)
@given(st.data())
def test_any_cell_text_decodes_alike(data):
    """Texts int(), float(), fromisoformat(), Decimal128() or json read more leniently than the writer writes."""
    ctype = data.draw(st.sampled_from(sorted(_cell_texts)))
    text = data.draw(_cell_texts[ctype])
    if data.draw(st.booleans()):
        text = data.draw(mutated_text(text))
    schema = codec.Schema([codec.Column("v", ctype)])
    compiled, exact = two_ways(codec.RowDecoder(schema).decode, [text, ""])
    assert compiled == exact
    noted = codec.Schema([codec.Column("v", "string")])  # the same text as a cell with a type note
    row = [text, json.dumps({"types": {"0": ctype}}, separators=(",", ":"))]
    compiled, exact = two_ways(codec.RowDecoder(noted).decode, row)
    assert compiled == exact


@needs_compiled
def test_decimal128_parse_errors_of_the_corpus_decode_alike():
    schema = codec.Schema([codec.Column("v", "decimal")])
    texts = [case["string"] for f in glob.glob(str(CORPUS / "decimal128-*.json"))
             for case in json.load(open(f)).get("parseErrors", [])]
    assert texts
    for text in texts:
        compiled, exact = two_ways(codec.RowDecoder(schema).decode, [text, ""])
        assert compiled == exact, text


# --------------------------------------------------------------------------
# The compiled halves one by one, against their Python twins


@needs_compiled
@given(st.one_of(st.binary(min_size=16, max_size=16),
                 st.sampled_from([struct.pack("<QQ", 0, h) for h in (0x7C00000000000000, 0xFC00000000000000,
                                  0x7E00000000000000, 0x7800000000000000, 0xF800000000000000)])))
def test_decimal_text_is_the_python_one(bits):
    assert accel.speedups.decimal_text(bits) == cells.decimal_text(bits)


@needs_compiled
@settings(max_examples=300)
@given(st.one_of(hard_documents, mutated()))
def test_dialect_text_is_the_python_one(raw):
    text = accel.speedups.to_json_text(raw)
    if text is not None:
        assert text == dialect.to_json_text(raw)
        back = accel.speedups.from_json_text(text)
        if back is not None:
            assert back == dialect.from_json_text(text)


@needs_compiled
@settings(max_examples=300)
@given(st.data())
def test_dialect_reading_is_the_python_one(data):
    raw = data.draw(hard_documents)
    try:
        text = dialect.to_json_text(raw)
    except CodecError:
        return
    text = data.draw(st.one_of(st.just(text), mutated_text(text)))
    back = accel.speedups.from_json_text(text)
    if back is not None:
        assert back == dialect.from_json_text(text)


# --------------------------------------------------------------------------
# Sizes past the accelerator's stack buffers, nesting past its depth limit


def _nested(depth: int) -> bytes:
    raw = document([element(16, b"x", struct.pack("<i", 1))])
    for _ in range(depth):
        raw = document([element(3, b"d", raw)])
    return raw


@needs_compiled
def test_large_wide_and_deep_documents_agree():
    big = "é" * 20000
    wide = [document([element(2, f"c{i}".encode(), bstr(f"{big[:i]}={i}".encode())) for i in range(300)]
                     + [element(3, b"sub", document([element(16, f"k{j % 30}".encode(), struct.pack("<i", j))
                                                     for j in range(40)]))])]
    long_sub = [document([element(3, b"sub", document([element(2, f"k{j}".encode(), bstr(big.encode()))
                                                        for j in range(40)]))])]
    deep = [_nested(accel.speedups.MAX_DEPTH - 2), _nested(accel.speedups.MAX_DEPTH + 5)]
    for raws in (wide, long_sub, deep):
        compiled, exact = two_ways(_roundtrip, raws)
        assert compiled == exact
        assert compiled[0] == "ok" and compiled[1][2] == raws


# --------------------------------------------------------------------------
# Memory: nothing kept, on the paths that succeed and on those that hand over to Python


@needs_compiled
def test_no_memory_is_kept_across_calls():
    raws = [bson.encode(equipment_doc(i)) for i in range(20)]
    schema, rows = codec.encode_documents(raws)
    enc = accel.speedups.RowEncoder([c.name.encode() for c in schema.columns],
                                    bytes(codec.rows._COMPILED_CODES[c.type] for c in schema.columns))
    dec = codec.RowDecoder(schema)
    damaged = [r[:-3] for r in raws] + [r[:40] + b"\xff" + r[41:] for r in raws]
    col = {c.name: i for i, c in enumerate(schema.columns)}
    quantity, location = col["quantity"], col["location"]
    bad_rows = ([r[:quantity] + ["x"] + r[quantity + 1:] for r in rows]
                + [[*r[:-1], '{"doc":1}'] for r in rows] + [[*r[:-1], r[location]] for r in rows])

    def work():
        for raw in raws + damaged:
            enc.encode(raw)
            accel.speedups.shape_key(raw)
            accel.speedups.to_json_text(raw)
        for row in rows + bad_rows:
            try:
                dec.decode(row)
            except CodecError:
                pass
        for row in rows:
            accel.speedups.from_json_text(row[location])
            accel.speedups.from_json_text(row[location][:-2])

    work()  # warm caches (plans, interned strings)
    tracemalloc.start()
    try:
        work()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(200):
            work()
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last - first < 64 * 1024, f"{last - first} bytes kept after 200 rounds"
