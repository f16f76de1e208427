"""UTC time and durations, in one place.

Everything the product stores or compares is UTC: backup ids, manifests,
audit entries, the scheduler's state. ``utc_now`` is the one clock (tests
may replace it), ``iso`` the one text form (ISO-8601, milliseconds, ``Z``),
``parse_iso`` the one reader (of text and of datetimes; naive ones are
UTC). Durations typed by people (``30s``, ``10m``, ``1h``, ``7d``, ``2w``)
are read by ``parse_duration`` and shown by ``format_duration``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .errors import UsageError

UTC = timezone.utc
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DURATION_S = 100 * 365 * 86400


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime | None, timespec: str = "milliseconds") -> str | None:
    """``2026-11-24T14:30:22.123Z`` (None stays None)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def now_iso() -> str:
    return iso(utc_now())  # type: ignore[return-value]


def parse_iso(value: object, *, text: bool = True) -> datetime | None:
    """The one reader of times: an aware ``datetime`` in UTC, or None.

    Takes a ``datetime`` (naive means UTC: every time the product stores is
    UTC) or, unless ``text`` is False, ISO-8601 text (``Z`` or an offset;
    naive means UTC). Anything else (None, "", a number, text that is not a
    time, a time that falls outside the calendar once moved to UTC) is None,
    never an exception: callers read stored or forged values.

    ``text=False`` is for values a driver decoded from BSON: there a string is
    not a date, and the server (``$$NOW``, ``$lte``) would not compare it as one.
    """
    if isinstance(value, datetime):
        when = value
    elif text and isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        return None


def from_timestamp(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def parse_duration(text: object, *, what: str = "duration", default_unit: str = "h",
                   minimum_s: float = 0.0) -> timedelta:
    """``30s``, ``10m``, ``1.5h``, ``7d``, ``2w``; a bare number is in ``default_unit``.

    A negative or zero duration is refused with a message that says so (not
    taken for a command-line option), and so are ``nan``, ``inf`` (not
    numbers here), durations over 100 years and, with ``minimum_s``, shorter
    ones than that.
    """
    raw = str(text).strip().lower()
    m = re.fullmatch(r"([-+]?)\s*(\d+(?:\.\d+)?|\.\d+)\s*([smhdw]?)", raw)
    if not m:
        raise UsageError(f"invalid {what} {text!r}: use a number with a unit s, m, h, d or w "
                         "(e.g. 30s, 1h, 7d)")
    seconds = float(m.group(2)) * _UNITS[m.group(3) or default_unit]
    if m.group(1) == "-" or seconds <= 0:
        raise UsageError(f"{what} must be positive, got {text!r}")
    if seconds > MAX_DURATION_S:
        raise UsageError(f"{what} {text!r} is too long (at most 100 years)")
    if seconds < minimum_s:
        raise UsageError(f"{what} {text!r} is too short (at least {format_duration(minimum_s)})")
    return timedelta(seconds=seconds)


def compact_duration(td: timedelta) -> str:
    """A duration as ``parse_duration`` reads it back: ``7d``, ``36h``, ``90m``, ``45s``."""
    s = td.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{s:g}s"


def format_duration(seconds: float) -> str:
    """A short duration for messages: ``45s``, ``12m 5s``, ``3h 20m``, ``2d 4h``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
