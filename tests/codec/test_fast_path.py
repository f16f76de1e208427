"""The fast paths through pymongo's C extension: present, taken, and never different from the exact walker."""

from __future__ import annotations

import datetime as dt

import bson
import pytest
from bson import Code, Decimal128, Int64, ObjectId
from hypothesis import given, settings

from backup_core import codec
from backup_core.codec import accel, fast

from .support import csv_roundtrip, raw_collections


@settings(max_examples=200)
@given(raw_collections)
def test_fast_paths_and_exact_walker_agree(raws):
    """The fast paths (the compiled accelerator included) are an optimisation only: same schema, same CSV,
    same bytes."""
    schema, text, back = csv_roundtrip(raws)
    with fast.disabled():
        exact_schema, exact_text, exact_back = csv_roundtrip(raws)
    assert exact_schema.to_json() == schema.to_json()
    assert exact_text == text
    assert exact_back == back == raws


def test_the_pinned_pymongo_has_the_c_functions_the_fast_path_needs():
    """bson._cbson._bson_to_dict / _dict_to_bson are pymongo internals: an upgrade that drops
    them must fail here, not silently make every backup and restore several times slower."""
    assert fast.available(), "pymongo's C extension lacks _bson_to_dict/_dict_to_bson: the codec fast path is gone"
    assert fast.enabled()


def _equipment(i: int) -> dict:
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


def _delta(before: dict[str, int]) -> dict[str, int]:
    return {k: v - before[k] for k, v in fast.stats().items()}


def test_typical_documents_take_the_fast_path_both_ways():
    """Without the compiled accelerator (test_accel.py), pymongo's C extension does them all."""
    raws = [bson.encode(_equipment(i)) for i in range(60)]
    before = fast.stats()
    with accel.disabled():
        _schema, _text, back = csv_roundtrip(raws)
    assert back == raws
    n = len(raws)
    assert _delta(before) == {"shape_compiled": 0, "shape_fast": n, "shape_exact": 0,
                              "encode_compiled": 0, "encode_fast": n, "encode_exact": 0,
                              "decode_compiled": 0, "decode_fast": n, "decode_exact": 0}


def test_the_exact_walker_is_the_fallback_when_the_fast_path_is_off():
    raws = [bson.encode(_equipment(i)) for i in range(20)]
    _schema, text, _back = csv_roundtrip(raws)
    before = fast.stats()
    with fast.disabled():
        assert not fast.enabled()
        _schema, exact_text, back = csv_roundtrip(raws)
    assert fast.enabled()
    assert back == raws and exact_text == text
    n = len(raws)
    assert _delta(before) == {"shape_compiled": 0, "shape_fast": 0, "shape_exact": n,
                              "encode_compiled": 0, "encode_fast": 0, "encode_exact": n,
                              "decode_compiled": 0, "decode_fast": 0, "decode_exact": n}


def test_values_pymongo_cannot_keep_take_the_exact_walker():
    """JavaScript code decodes to a str subclass: the fast path refuses its document (both ways)."""
    raws = [bson.encode({"_id": 1, "f": Code("x()")}), bson.encode({"_id": 2, "f": Code("y()")})]
    before = fast.stats()
    with accel.disabled():  # the compiled accelerator handles code itself
        _schema, _text, back = csv_roundtrip(raws)
    assert back == raws
    delta = _delta(before)
    assert delta["encode_exact"] == 2 and delta["decode_exact"] == 2


def test_the_switch_comes_back_on_after_an_error():
    with pytest.raises(RuntimeError):
        with fast.disabled():
            raise RuntimeError
    assert fast.enabled()
    fast.set_enabled(False)
    try:
        assert codec.encode_documents([bson.encode({"a": 1})])[1] == [["1", ""]]
    finally:
        fast.set_enabled(True)
    assert fast.enabled()
