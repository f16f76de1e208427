"""The one reader of times (``timeutil.parse_iso``) and the one writer (``timeutil.iso``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backup_core.timeutil import UTC, iso, parse_iso

WHEN = datetime(2026, 11, 24, 14, 30, 22, 123000, tzinfo=UTC)


@pytest.mark.parametrize("value", [
    "2026-11-24T14:30:22.123Z",
    "2026-11-24T14:30:22.123+00:00",
    "2026-11-24T15:30:22.123+01:00",
    "2026-11-24T14:30:22.123",  # naive text is UTC
    WHEN,
    WHEN.replace(tzinfo=None),  # a naive datetime is UTC
    WHEN.astimezone(timezone(timedelta(hours=-5))),
])
def test_parse_iso_gives_aware_utc(value):
    got = parse_iso(value)
    assert got == WHEN
    assert got.utcoffset() == timedelta(0)
    assert iso(got) == "2026-11-24T14:30:22.123Z"


@pytest.mark.parametrize("value", [None, "", "yesterday", "2026-13-01T00:00:00Z", 1732458622, 17.5, b"2026-11-24",
                                   ["2026-11-24T14:30:22Z"], {"$date": "2026-11-24T14:30:22Z"},
                                   "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_parse_iso_refuses_quietly(value):
    assert parse_iso(value) is None


def test_parse_iso_datetimes_only():
    assert parse_iso("2026-11-24T14:30:22.123Z", text=False) is None
    assert parse_iso(WHEN.replace(tzinfo=None), text=False) == WHEN
    assert parse_iso(None, text=False) is None
