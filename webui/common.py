"""Formatting and error display every section uses: sizes, ages, local times, one-line errors.

Sections stay thin (STYLE.md 2): they read widgets, call one ``backup_core``
function through :func:`run_core`, and show the result. Errors reach the user
as one ``st.error`` line saying what to do next, never as a traceback.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Callable, TypeVar

import streamlit as st

from backup_core.errors import BackupError
from backup_core.timeutil import parse_iso
from backup_core.units import format_bytes

T = TypeVar("T")

human_bytes = format_bytes  # one formatter for the CLI and the dashboard


def show_error(err: BaseException) -> None:
    """One ``st.error`` line: a BackupError's message and hint, or 'Unexpected error' for bugs."""
    if isinstance(err, BackupError):
        text = str(err)
        hint = getattr(err, "hint", "")
        if hint:
            text = f"{text}. {hint[0].upper()}{hint[1:]}" if not text.endswith(".") else f"{text} {hint}"
        st.error(text)
    else:
        first = (str(err).splitlines() or [""])[0]
        st.error(f"Unexpected error: {type(err).__name__}: {first}. "
                 "Please report it; the details are in the server log.")
        logging.getLogger("webui").exception("unexpected error in the dashboard", exc_info=err)


def run_core(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; on any exception show it with :func:`show_error` and return None."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the UI must never show a traceback
        show_error(exc)
        return None


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``1 backup``, ``2 backups``."""
    return f"{n} {word if n == 1 else (plural_form or word + 's')}"


def human_age(dt: Any, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'; 'in 10 min' for the future."""
    when = parse_iso(dt)
    if when is None:
        return "never"
    now = now or datetime.now(timezone.utc)
    secs = (now - when).total_seconds()
    future = secs < 0
    secs = abs(secs)
    if secs < 60:
        return "just now" if not future else "in < 1 min"
    if secs < 3600:
        amount = f"{int(secs // 60)} min"
    elif secs < 86400 * 2:
        amount = f"{int(secs // 3600)} h"
    else:
        amount = f"{int(secs // 86400)} days"
    return f"in {amount}" if future else f"{amount} ago"


# ---------------------------------------------------------------- local time

def _offset_text(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def local_zone() -> tuple[tzinfo, str]:
    """The time zone to show times in, and its name for headings ("Europe/Paris, UTC+01:00").

    The browser's zone (``st.context.timezone``) when it sent one, otherwise
    the dashboard server's.
    """
    name = None
    try:
        name = st.context.timezone
    except Exception:  # noqa: BLE001 - no browser (AppTest, bare mode): the server's zone
        name = None
    if name:
        try:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(name)
            offset = datetime.now(tz).utcoffset()
            return tz, "UTC" if name in ("UTC", "Etc/UTC") else f"{name}, {_offset_text(offset)}"
        except Exception:  # noqa: BLE001 - an unknown zone name: fall back
            pass
    tz = datetime.now().astimezone().tzinfo or timezone.utc
    offset = datetime.now(tz).utcoffset()
    abbrev = datetime.now(tz).tzname() or ""
    if not offset and abbrev in ("UTC", "GMT", ""):
        return tz, "UTC"
    return tz, f"{_offset_text(offset)}" + (f" ({abbrev})" if abbrev and not abbrev[0] in "+-" else "")


def local_time(dt: Any, tz: tzinfo | None = None, *, seconds: bool = True) -> str:
    """``2026-11-23 19:05:11`` in ``tz`` (default :func:`local_zone`), 24 h; '' for no time."""
    when = parse_iso(dt)
    if when is None:
        return ""
    return when.astimezone(tz or local_zone()[0]).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def when_text(value: Any, tz: tzinfo) -> str:
    """``2026-11-23 19:05:11 (in 55 min)`` in ``tz``; ``–`` for none."""
    if not value:
        return "–"
    return f"{local_time(value, tz)} ({human_age(value)})"


# ---------------------------------------------------------------- documents

# fields that name a document for people, in order of preference
LABEL_FIELDS = ("name", "asset_id", "title", "label", "serial", "serial_number", "code", "email", "username",
                "field", "value")


def document_label(doc: Any) -> str:
    """A field that names a document for people (e.g. its name or asset id), or ''."""
    if not isinstance(doc, dict):
        return ""
    for name in LABEL_FIELDS:
        value = doc.get(name)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return f"{name}: {value}"
    for name, value in doc.items():
        if name != "_id" and isinstance(value, str) and 0 < len(value) <= 60:
            return f"{name}: {value}"
    return ""


def document_title(doc: Any) -> str:
    """A short title for a document: its _id and, when it has one, a name-like field."""
    key = doc.get("_id") if isinstance(doc, dict) else None
    if isinstance(key, dict) and len(key) == 1:
        key = next(iter(key.values()))
    label = document_label(doc)
    text = str(key) if key is not None else "(no _id)"
    return f"{text} — {label}" if label else text
