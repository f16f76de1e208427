"""Query filters that people type: JSON in the product's dialect, checked before anything runs.

``archive --filter JSON`` and the Python API's ``archive(collection, filter)``
select documents with a MongoDB query. A filter is checked here, before any
read or write: its structure (a JSON object of fields, ``$and``/``$or``/``$nor``
lists, operator documents) and its operators against the list of plain
query operators below. Operators that run code or aggregation on the server
(``$where``, ``$expr``, ``$function``, ...) and anything unknown are refused
with one line naming the operator.

Values are read as the codec's JSON dialect (docs/FORMAT.md, "The JSON
dialect"; canonical Extended JSON is a subset), so a date is
``{"$date": "2026-01-01T00:00:00.000Z"}`` and an ObjectId ``{"$oid": "..."}``.
For typing convenience a ``$date`` may also be any ISO-8601 date or time
(``"2026-01-01"``, ``"2026-01-01T12:00:00+02:00"``; no zone means UTC), and a
bare integer outside the int32 range is an int64.

``filter_to_json`` writes a filter back as that JSON (what a manifest
records); ``parse_filter`` reads it again to the same query.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Callable

import bson
from bson.codec_options import DatetimeConversion, CodecOptions
from bson.errors import BSONError

from .errors import CodecError, UsageError

LOGICAL = ("$and", "$or", "$nor")
# field operators allowed in a filter, with the kind of operand each takes
OPERATORS = {
    "$eq": "value", "$ne": "value", "$gt": "value", "$gte": "value", "$lt": "value", "$lte": "value",
    "$in": "values", "$nin": "values", "$all": "values",
    "$exists": "bool", "$type": "types", "$size": "count", "$mod": "mod",
    "$regex": "regex", "$options": "text", "$not": "not", "$elemMatch": "elem",
}
# the dialect's value wrappers (a filter value such as {"$date": ...}); any other "$" name is an operator
WRAPPERS = frozenset({"$binary", "$code", "$scope", "$date", "$dbPointer", "$decimalBits", "$doubleBits",
                      "$fields", "$arrayFields", "$maxKey", "$minKey", "$numberDecimal", "$numberDouble",
                      "$numberInt", "$numberLong", "$oid", "$regularExpression", "$symbol", "$timestamp",
                      "$undefined"})
_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_DECODE = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
_DIALECT_DATE = re.compile(r"^[+-]?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

Leaf = Callable[[Any], Any]


class FilterError(UsageError):
    """A filter that is not valid JSON, uses an unknown or unsupported operator, or holds a bad value."""


def parse_filter(value: "str | dict", *, what: str = "filter") -> dict:
    """A checked query from JSON text, a JSON object in the dialect, or a Python dict of BSON values.

    A ``str`` is JSON text; in a ``dict`` values are Python values (datetimes,
    ObjectIds, ...) or dialect wrappers (``{"$date": ...}``), read as in JSON text.
    """
    if isinstance(value, (bytes, str)):
        try:
            obj = json.loads(value)
        except ValueError as exc:
            raise FilterError(f"invalid {what}: not JSON ({exc})") from None
        return _top(obj, _from_json, what)
    return _top(value, _python_leaf, what)


def filter_to_json(query: dict) -> dict:
    """A checked query as JSON in the dialect (``parse_filter`` reads it back to the same query)."""
    from .mongoutil import json_dialect

    def leaf(v: Any) -> Any:
        return json_dialect({"v": v})["v"]

    return _top(query, leaf, "filter")


def filter_text(query: dict) -> str:
    """One line of JSON, for messages and the audit log."""
    return json.dumps(filter_to_json(query), ensure_ascii=False, separators=(", ", ": "))


# ---------------------------------------------------------------------------- structure


def _top(obj: Any, leaf: Leaf, what: str) -> dict:
    if not isinstance(obj, dict):
        raise FilterError(f"invalid {what}: expected a JSON object such as "
                          '{"at": {"$lt": {"$date": "2026-01-01T00:00:00.000Z"}}}')
    if not obj:
        raise FilterError(f"invalid {what}: an empty filter matches every document; name the documents "
                          "(e.g. {\"status\": \"closed\"})")
    return _query(obj, leaf, what)


def _query(obj: Any, leaf: Leaf, what: str) -> dict:
    if not isinstance(obj, dict):
        raise FilterError(f"invalid {what}: expected an object, got {_show(obj)}")
    out: dict = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key or "\x00" in key:
            raise FilterError(f"invalid {what}: bad field name {key!r}")
        if key in LOGICAL:
            if not isinstance(value, list) or not value:
                raise FilterError(f"invalid {what}: {key} needs a non-empty list of conditions")
            out[key] = [_query(v, leaf, what) for v in value]
        elif key.startswith("$"):
            raise FilterError(f"invalid {what}: {_unsupported(key)}")
        else:
            out[key] = _condition(value, leaf, what)
    return out


def _is_operators(value: Any, what: str) -> bool:
    if not isinstance(value, dict) or not value or not all(isinstance(k, str) and k.startswith("$") for k in value):
        return False
    if all(k in WRAPPERS for k in value):
        return False  # a value wrapper such as {"$date": ...}
    for k in value:
        if k not in OPERATORS:
            raise FilterError(f"invalid {what}: {_unsupported(k)}")
    return True


def _condition(value: Any, leaf: Leaf, what: str) -> Any:
    if not _is_operators(value, what):
        return _value(value, leaf, what)
    if "$options" in value and "$regex" not in value:
        raise FilterError(f"invalid {what}: $options needs a $regex next to it")
    return {op: _operand(op, arg, leaf, what) for op, arg in value.items()}


def _operand(op: str, arg: Any, leaf: Leaf, what: str) -> Any:
    kind = OPERATORS[op]
    if kind == "value":
        return _value(arg, leaf, what)
    if kind == "values":
        if not isinstance(arg, list):
            raise FilterError(f"invalid {what}: {op} needs a list, got {_show(arg)}")
        return [_value(v, leaf, what) for v in arg]
    if kind == "bool":
        if not isinstance(arg, bool):
            raise FilterError(f"invalid {what}: {op} needs true or false, got {_show(arg)}")
        return arg
    if kind == "types":
        items = arg if isinstance(arg, list) else [arg]
        if not items or not all(isinstance(t, (str, int)) and not isinstance(t, bool) for t in items):
            raise FilterError(f"invalid {what}: {op} needs a type name or number (or a list of them)")
        return arg
    if kind == "count":
        if not isinstance(arg, int) or isinstance(arg, bool) or arg < 0:
            raise FilterError(f"invalid {what}: {op} needs a whole number of 0 or more, got {_show(arg)}")
        return arg
    if kind == "mod":
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in arg)) or arg[0] == 0:
            raise FilterError(f"invalid {what}: {op} needs [divisor, remainder] (whole numbers, divisor not 0)")
        return arg
    if kind == "text":
        if not isinstance(arg, str):
            raise FilterError(f"invalid {what}: {op} needs a string, got {_show(arg)}")
        return arg
    if kind == "regex":
        return arg if isinstance(arg, str) else _value(arg, leaf, what)
    if kind == "not":
        return _condition(arg, leaf, what) if _is_operators(arg, what) else _value(arg, leaf, what)
    # $elemMatch: conditions on the elements themselves, or a query on sub-document elements
    if not isinstance(arg, dict) or not arg:
        raise FilterError(f"invalid {what}: {op} needs a non-empty object")
    return _condition(arg, leaf, what) if _is_operators(arg, what) else _query(arg, leaf, what)


def _value(value: Any, leaf: Leaf, what: str) -> Any:
    return leaf(value)


def _plain(value: Any, given: Any) -> Any:
    """``value`` (a decoded filter value), unless it holds names MongoDB would read as operators."""
    if _has_operator_names(value):
        raise FilterError(f"invalid filter value {_show(given)}: a value may not hold field names starting "
                          "with '$'; use an operator such as $eq")
    return value


def _has_operator_names(value: Any) -> bool:
    if isinstance(value, dict):
        return any(isinstance(k, str) and k.startswith("$") for k in value) or \
            any(_has_operator_names(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_operator_names(v) for v in value)
    return False


def _unsupported(op: str) -> str:
    allowed = ", ".join((*LOGICAL, *OPERATORS))
    return f"operator {op} is not supported in a filter (allowed: {allowed})"


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------------------- values


def _from_json(value: Any) -> Any:
    """A JSON value in the dialect (with the typing conveniences above) -> a Python BSON value."""
    from . import codec

    try:
        raw = codec.from_json_text(json.dumps({"v": _convenient(value)}))
        # DATETIME_AUTO: a date outside Python's datetime range stays a DatetimeMS instead of failing
        decoded = bson.decode(raw, codec_options=_DECODE)["v"]
    except (CodecError, BSONError, ValueError, TypeError, OverflowError) as exc:
        raise FilterError(f"invalid filter value {_show(value)}: {exc}") from None
    return _plain(decoded, value)


def _convenient(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not _INT32[0] <= value <= _INT32[1]:
        if not -(2 ** 63) <= value < 2 ** 63:
            raise FilterError(f"invalid filter value {value}: outside the int64 range")
        return {"$numberLong": str(value)}
    if isinstance(value, list):
        return [_convenient(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$date"), str):
            return {"$date": _date_text(value["$date"])}
        if len(value) == 1 and next(iter(value)).startswith("$"):
            return value  # another wrapper: the dialect reads it as it is
        return {k: _convenient(v) for k, v in value.items()}
    return value


def _date_text(text: str) -> str:
    """Any ISO-8601 date or time as the dialect's UTC text with milliseconds (no zone: UTC)."""
    if _DIALECT_DATE.match(text):
        return text  # already the dialect's (which also holds dates Python's datetime cannot)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise FilterError(f"invalid $date {text!r}: expected an ISO-8601 date or time such as "
                          "2026-01-01 or 2026-01-01T00:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d}T{when.hour:02d}:{when.minute:02d}:"
            f"{when.second:02d}.{when.microsecond // 1000:03d}Z")


def _python_leaf(value: Any) -> Any:
    """A Python value given by the API: anything BSON can hold, as it is; dialect wrappers are read."""
    if _has_operator_names(value):
        return _from_json(value)  # e.g. {"$date": "2026-01-01"} in a dict built from JSON
    try:
        bson.encode({"v": value})
    except (BSONError, TypeError, OverflowError) as exc:
        raise FilterError(f"invalid filter value {value!r}: {exc}") from None
    return _plain(value, value)
