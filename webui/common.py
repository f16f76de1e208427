"""Helpers every dashboard page uses: settings, the logged-in user, errors, formatting.

Pages stay thin (STYLE.md 2): they read widgets, call one ``backup_core``
function through :func:`run_core`, and show the result. Errors reach the user
as one ``st.error`` line saying what to do next, never as a traceback.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable, TypeVar

import streamlit as st

from backup_core.config import Settings
from backup_core.errors import BackupError

T = TypeVar("T")

AUTH_KEY = "auth_user"
SETTINGS_KEY = "_webui_settings"


def current_user():
    """The logged-in ``backup_core.auth.User`` or None."""
    return st.session_state.get(AUTH_KEY)


def get_settings() -> Settings:
    """``Settings.load()`` once per session, with ``user`` set to the logged-in user's name."""
    settings = st.session_state.get(SETTINGS_KEY)
    if settings is None:
        settings = Settings.load()
        st.session_state[SETTINGS_KEY] = settings
    user = current_user()
    name = getattr(user, "name", None)
    if name and settings.user != name:
        settings = settings.with_user(name)
        st.session_state[SETTINGS_KEY] = settings
    return settings


def require_login():
    """Return the logged-in user, or show a warning and stop the page."""
    user = current_user()
    if user is None:
        st.warning("Please log in on the home page first.")
        st.stop()
    return user


def is_admin() -> bool:
    user = current_user()
    return bool(user is not None and getattr(user, "is_admin", getattr(user, "role", "") == "admin"))


def require_admin(action: str) -> bool:
    """True for admins; for anyone else show a refusal and return False."""
    if is_admin():
        return True
    user = current_user()
    who = f"{user.name} ({user.role})" if user is not None else "you"
    st.error(f"{action} needs the admin role; {who} can only look. Ask an admin, or log in as one.")
    return False


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
        import logging

        logging.getLogger("webui").exception("unexpected error in the dashboard", exc_info=err)


def run_core(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Call ``fn``; on any exception show it with :func:`show_error` and return None."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the UI must never show a traceback
        show_error(exc)
        return None


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _as_datetime(dt: Any) -> datetime | None:
    if dt is None or dt == "":
        return None
    if isinstance(dt, str):
        try:
            dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(dt, datetime):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


def human_age(dt: Any, now: datetime | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 days ago'; 'in 10 min' for the future."""
    when = _as_datetime(dt)
    if when is None:
        return "never"
    now = now or datetime.now(timezone.utc)
    secs = (now - when).total_seconds()
    future = secs < 0
    secs = abs(secs)
    if secs < 60:
        text = "just now" if not future else "in less than a minute"
        return text
    if secs < 3600:
        amount = f"{int(secs // 60)} min"
    elif secs < 86400 * 2:
        amount = f"{int(secs // 3600)} h"
    else:
        amount = f"{int(secs // 86400)} days"
    return f"in {amount}" if future else f"{amount} ago"


def backup_label(info) -> str:
    return (f"{info.backup_id} — {info.trigger} — {info.total_documents} docs — "
            f"{human_age(info.created)}")


def backup_picker(store, key_prefix: str, label: str = "Backup"):
    """Pick a backup: a day-of-week selectbox, then a backup of that day (newest first).

    Keys ``f"{key_prefix}_day"`` and ``f"{key_prefix}_backup"``. Returns the
    chosen ``BackupInfo`` or None when there is none.
    """
    from backup_core.store import WEEKDAYS

    listing = run_core(list_backups_cached, store)
    if listing is None:
        return None
    backups, errors = listing
    if errors:
        st.warning(f"{len(errors)} folder(s) in the backup root are not readable backups: "
                   + "; ".join(errors[:3]) + (" …" if len(errors) > 3 else ""))
    if not backups:
        st.info("There are no backups yet. Create one on the Create Backup page.")
        return None
    by_day: dict[str, list] = {}
    for b in backups:
        by_day.setdefault(b.day, []).append(b)
    days = [d for d in WEEKDAYS if d in by_day]
    newest_day = backups[0].day
    cols = st.columns([1, 3])
    with cols[0]:
        day = st.selectbox(
            "Day of the week", days, index=days.index(newest_day),
            format_func=lambda d: f"{d.capitalize()} ({len(by_day[d])})",
            key=f"{key_prefix}_day",
        )
    choices = by_day.get(day) or []
    if not choices:
        return None
    by_id = {b.backup_id: b for b in choices}
    with cols[1]:
        chosen = st.selectbox(label, list(by_id), format_func=lambda i: backup_label(by_id[i]),
                              key=f"{key_prefix}_backup")
    return by_id.get(chosen)


def _backup_root_signature(root) -> tuple:
    """Cheap change detector: creating, renaming or deleting a backup folder changes its day folder's mtime."""
    import os

    from backup_core.store import WEEKDAYS

    sig = []
    for day in WEEKDAYS:
        try:
            sig.append(os.stat(os.path.join(root, day)).st_mtime_ns)
        except OSError:
            sig.append(None)
    return tuple(sig)


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_listing(root: str, signature: tuple):
    from backup_core.store import Store

    errors: list[str] = []
    return Store(root).list_backups(errors=errors), errors


def list_backups_cached(store) -> tuple[list, list[str]]:
    """``store.list_backups()`` (newest first) plus unreadable-folder messages, cached until the root changes.

    Parsing and hash-checking 500 manifests takes a noticeable fraction of a
    second; every rerun of a page would pay it again without this cache.
    The returned objects are shared: do not modify them.
    """
    root = str(store.root)
    return _cached_listing(root, _backup_root_signature(root))


def database_overview(settings) -> dict:
    """``db.database_info`` of the configured database (connects, and closes again)."""
    from backup_core.db import connect, database_info

    with connect(settings) as conn:
        return database_info(conn)
