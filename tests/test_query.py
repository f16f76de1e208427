"""query.py: filters people type, checked before anything runs, recorded and read back exactly."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import bson
import pytest
from bson import Int64, ObjectId
from hypothesis import given, settings, strategies as st

from backup_core.query import FilterError, filter_text, filter_to_json, parse_filter
from tests.strategies import scalars


@settings(max_examples=200, deadline=None)
@given(scalars, st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"]))
def test_any_value_is_recorded_and_read_back_exactly(value, op):
    query = parse_filter({"f": {op: [value] if op == "$in" else value}, "$or": [{"g": value}]})
    text = json.dumps(filter_to_json(query))
    assert bson.encode(parse_filter(text)) == bson.encode(query)


@pytest.mark.parametrize("text, expected", [
    ('{"at": {"$lt": {"$date": "2026-01-01"}}}', {"at": {"$lt": datetime(2026, 1, 1)}}),
    ('{"at": {"$lt": {"$date": "2026-01-01T02:00:00+02:00"}}}', {"at": {"$lt": datetime(2026, 1, 1)}}),
    ('{"at": {"$lt": {"$date": "2026-01-01T00:00:00.000Z"}}}', {"at": {"$lt": datetime(2026, 1, 1)}}),
    ('{"at": {"$gte": {"$date": {"$numberLong": "0"}}}}', {"at": {"$gte": datetime(1970, 1, 1)}}),
    ('{"_id": {"$oid": "5f0000000000000000000001"}}', {"_id": ObjectId("5f0000000000000000000001")}),
    ('{"n": 3000000000}', {"n": 3000000000}),
    ('{"n": {"$numberLong": "5"}}', {"n": Int64(5)}),
    ('{"$or": [{"a": {"$exists": false}}, {"a": null}]}', {"$or": [{"a": {"$exists": False}}, {"a": None}]}),
    ('{"tags": {"$elemMatch": {"$gt": 1, "$lt": 5}}, "s": {"$not": {"$regex": "^x"}}}',
     {"tags": {"$elemMatch": {"$gt": 1, "$lt": 5}}, "s": {"$not": {"$regex": "^x"}}}),
    ('{"a.b": {"$size": 2, "$all": [1, 2]}, "c": {"$mod": [4, 1]}, "d": {"$type": ["int", 18]}}',
     {"a.b": {"$size": 2, "$all": [1, 2]}, "c": {"$mod": [4, 1]}, "d": {"$type": ["int", 18]}}),
])
def test_json_text_in_the_dialect(text, expected):
    assert parse_filter(text) == expected


@pytest.mark.parametrize("value, message", [
    ("", "not JSON"), ("[]", "expected a JSON object"), ("{}", "empty filter"), ('"x"', "expected a JSON object"),
    ('{"$where": "1"}', "$where is not supported"), ('{"$expr": {"$eq": [1, 1]}}', "$expr is not supported"),
    ('{"a": {"$function": {}}}', "$function is not supported"), ('{"a": {"$gt": 1, "$bogus": 2}}', "$bogus"),
    ('{"$text": {"$search": "x"}}', "$text is not supported"), ('{"$and": []}', "non-empty list"),
    ('{"$or": {"a": 1}}', "non-empty list"), ('{"a": {"$in": 5}}', "needs a list"),
    ('{"a": {"$exists": "yes"}}', "true or false"), ('{"a": {"$size": -1}}', "0 or more"),
    ('{"a": {"$mod": [0, 1]}}', "divisor not 0"), ('{"a": {"$options": "i"}}', "needs a $regex"),
    ('{"a": {"$date": "someday"}}', "invalid $date"), ('{"a": {"x": {"$gt": 1}}}', "unknown JSON wrapper"),
    ('{"a": {"$fields": [["$gt", 1]]}}', "field names starting with '$'"), ('{"": 1}', "bad field name"),
    ('{"a": 99999999999999999999}', "outside the int64 range"),
])
def test_bad_filters_say_what_is_wrong(value, message):
    with pytest.raises(FilterError) as err:
        parse_filter(value)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_python_values_from_the_api():
    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert parse_filter({"at": {"$lt": when}}) == {"at": {"$lt": when}}
    assert parse_filter({"at": {"$lt": {"$date": "2026-01-01"}}}) == {"at": {"$lt": datetime(2026, 1, 1)}}
    assert filter_text({"at": {"$lt": when}}) == '{"at": {"$lt": {"$date": "2026-01-01T00:00:00.000Z"}}}'
    with pytest.raises(FilterError, match="invalid filter value"):
        parse_filter({"a": object()})
    with pytest.raises(FilterError, match="unknown JSON wrapper"):
        parse_filter({"a": {"$weird": 1, "b": 2}})
