"""Helpers every dashboard page uses: settings, the logged-in user, errors, formatting.

Pages stay thin (STYLE.md 2): they read widgets, call one ``backup_core``
function through :func:`run_core`, and show the result. Errors reach the user
as one ``st.error`` line saying what to do next, never as a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, NamedTuple, TypeVar

import streamlit as st

from backup_core import audit, auth, config
from backup_core.config import Settings
from backup_core.errors import BackupError

T = TypeVar("T")

AUTH_KEY = "auth_user"
SETTINGS_KEY = "_webui_settings"
# why the user store ended the session; the login page shows it once
LOGGED_OUT_KEY = "_logged_out_message"
# which secrets.toml the session's settings hold (path, mtime, size, inode)
SECRETS_SIG_KEY = "_webui_secrets_signature"


def current_user():
    """The logged-in ``backup_core.auth.User`` or None, re-checked against the user store.

    Every call follows the user store (``auth.refresh``: a few ``stat`` calls,
    no password hashing): a user deleted, locked out or given a new password
    since logging in is logged out here, with the reason kept for the login
    page, and a changed role applies at once. So every page that asks
    ``current_user``/``require_login``/``is_admin`` sees the user store as it
    is now, whether or not ``app.py``'s ``main`` ran first in this rerun.
    """
    user = st.session_state.get(AUTH_KEY)
    if user is None or getattr(user, "fingerprint", None) is None:
        return user  # not from a login: auth.refresh leaves it alone, so skip loading settings
    return _follow_user_store(user)


def end_session(message: str | None = None) -> None:
    """Forget the logged-in user (and the settings made for it); ``message`` goes to the login page."""
    for key in (AUTH_KEY, SETTINGS_KEY, SECRETS_SIG_KEY):
        st.session_state.pop(key, None)
    if message:
        st.session_state[LOGGED_OUT_KEY] = message


def _follow_user_store(user):
    try:
        check = auth.refresh(_settings_with_current_secrets(), user)
    except Exception as exc:  # noqa: BLE001 - fail closed: a session that cannot be checked ends
        logging.getLogger("webui").warning("cannot check the session of %s", user.name, exc_info=True)
        settings = st.session_state.get(SETTINGS_KEY)
        try:
            if settings is not None:
                audit.record(settings, user=user.name, action="logout", reason="configuration",
                             error=str(exc))
        except Exception:  # noqa: BLE001
            pass
        end_session(f"You were logged out: your session could not be checked ({exc}).")
        return None
    if check.ended:  # auth.refresh has audited it
        end_session(check.message)
        return None
    if check.user != user:  # a new role
        st.session_state[AUTH_KEY] = check.user
        st.toast(check.message)
    return check.user


def _settings_with_current_secrets() -> Settings:
    """The session's settings, with secrets.toml read again when the file changed (users may leave it).

    Only the secrets are replaced: the database and backup root of a running
    session stay as they were.
    """
    settings = st.session_state.get(SETTINGS_KEY)
    if settings is None:
        settings = Settings.load()
        st.session_state[SETTINGS_KEY] = settings
    path = config.secrets_path()
    try:
        stat = path.stat()
        signature = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        signature = (str(path), None)
    if st.session_state.get(SECRETS_SIG_KEY) != signature:
        settings = dataclasses.replace(settings, secrets=config.load_secrets(path))
        st.session_state[SETTINGS_KEY] = settings
        st.session_state[SECRETS_SIG_KEY] = signature
    return settings


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


FLASH_KEY = "_flash_message"


def flash(kind: str, text: str) -> None:
    """Show ``text`` (``st.success``/``info``/``error``...) after a rerun, so the page shows the new state."""
    st.session_state[FLASH_KEY] = (kind, text)
    st.rerun()


def show_flash() -> None:
    """Show the message a ``flash`` left, once."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        getattr(st, message[0])(message[1])


def human_bytes(n: int | float | None) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``1 backup``, ``2 backups``."""
    return f"{n} {word if n == 1 else (plural_form or word + 's')}"


def document_title(doc: Any) -> str:
    """A short title for a document: its _id and, when it has one, a name-like field."""
    from webui.restore_flow import document_label

    key = doc.get("_id") if isinstance(doc, dict) else None
    if isinstance(key, dict) and len(key) == 1:
        key = next(iter(key.values()))
    label = document_label(doc)
    text = str(key) if key is not None else "(no _id)"
    return f"{text} — {label}" if label else text


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
    trigger = info.trigger
    if trigger == "safety" and getattr(info, "restore_of", None):
        trigger = f"safety, taken before restoring {info.restore_of}"
    return (f"{info.backup_id} — {trigger} — {plural(info.total_documents, 'doc')} — "
            f"{human_age(info.created)}" + (" — encrypted" if getattr(info, "encrypted", False) else ""))


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


def local_time(dt: Any, tz: tzinfo | None = None) -> str:
    """``2026-11-23 19:05:11`` in ``tz`` (default :func:`local_zone`), 24 h; '' for no time."""
    when = _as_datetime(dt)
    if when is None:
        return ""
    return when.astimezone(tz or local_zone()[0]).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- storage

class StorageFigures(NamedTuple):
    on_disk: int | None   # store.usage(): every byte under the root (backups, audit log, state)
    data_files: int       # the backups' own files, as their manifests record them
    backups: int


@st.cache_data(show_spinner=False, max_entries=16, ttl=60)
def _cached_usage(url: str, token: object, bucket: int, _store) -> int:
    return _store.usage()


def backup_storage(store, backups) -> StorageFigures:
    """The one place Home and Browse get their storage figures from.

    ``on_disk`` walks the root, so it is cached until a backup is added or
    removed (and for at most 10 s when the store cannot tell).
    """
    import time

    token = store.change_token()
    bucket = int(time.time() // 10) if token is None else 0
    try:
        used = _cached_usage(store.url, token, bucket, store)
    except Exception:  # noqa: BLE001 - the figure is informative; the listing already reported problems
        logging.getLogger("webui").warning("cannot measure the backup storage", exc_info=True)
        used = None
    return StorageFigures(used, sum(b.total_bytes for b in backups), len(backups))


def storage_text(fig: StorageFigures, url: str) -> str:
    """``3 backups in `…`: 1.2 MB in storage (…); their data files add up to 2.0 MB``.

    The data files can add up to more than is stored: an unchanged collection
    is stored once and shared by every backup that holds it.
    """
    where = f"{plural(fig.backups, 'backup')} in `{url}`"
    files = f"their data files add up to {human_bytes(fig.data_files)}"
    if fig.on_disk is None:
        return f"{where}; {files} (the stored size could not be measured)"
    return (f"{where}: {human_bytes(fig.on_disk)} in storage (manifests included, data shared by several "
            f"backups counted once); {files}")


def where_backups_live(settings, store) -> str:
    """For people: the kind of storage, where (never credentials), and whether new backups are encrypted."""
    url = store.url
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        place = f"S3 bucket **{bucket}**" + (f", prefix `{prefix}`" if prefix else "")
    else:
        place = f"local folder `{url}`"
    key = store.keyring.current
    crypt = (f"new backups are **encrypted** (AES-256-GCM, key {key.fingerprint})" if key
             else "new backups are **not encrypted** (set BACKUP_KEY_FILE to encrypt them)")
    mirror = f"; a second copy of each goes to `{settings.mirror_root}`" if settings.mirror_root else ""
    return f"Backups are stored in the {place}; {crypt}{mirror}."


@st.cache_data(show_spinner=False, ttl=60, max_entries=8)
def _mirror_status(_settings, _store, url: str, mirror: str, token: object):
    from backup_core.context import open_store as _open
    from backup_core.mirror import mirror_status

    return mirror_status(_store, _open(_settings, mirror))


def mirror_status_cached(settings, store):
    """``mirror.mirror_status`` of the configured mirror, cached for a minute (it lists the mirror)."""
    return _mirror_status(settings, store, store.url, settings.mirror_root, store.change_token())


def storage_section(backups, tz, zone: str, *, key: str) -> None:
    """The storage picture Home and Browse both show: stored bytes over time, and per collection."""
    from webui import charts

    if not backups:
        return
    st.markdown("**Storage over time**: each backup's logical size against what it really added "
                "(unchanged collections are stored once and shared; compression saves the rest)")
    st.altair_chart(charts.storage_over_time(backups, tz, zone), width="stretch", key=f"{key}_chart_storage")
    st.dataframe(charts.storage_by_collection(backups), hide_index=True, key=f"{key}_storage_by_collection")


def backup_picker(store, key_prefix: str, label: str = "Backup", *, include_safety: bool = True,
                  triggers: list[str] | None = None):
    """Pick a backup: a day-of-week selectbox, then a backup of that day (newest first).

    Keys ``f"{key_prefix}_day"`` and ``f"{key_prefix}_backup"``. Returns the
    chosen ``BackupInfo`` or None when there is none. ``include_safety=False``
    leaves out the safety backups restores take; ``triggers`` keeps only those.
    """
    from backup_core.store import WEEKDAYS

    listing = run_core(list_backups_cached, store)
    if listing is None:
        return None
    backups, errors = listing
    hidden = 0
    if not include_safety or triggers is not None:
        shown = [b for b in backups if (include_safety or b.trigger != "safety")
                 and (triggers is None or b.trigger in triggers)]
        hidden, backups = len(backups) - len(shown), shown
    if hidden and not backups:
        st.info(f"No backup to show: {plural(hidden, 'backup')} hidden by the choice above.")
        return None
    if errors:
        st.warning(f"{plural(len(errors), 'folder')} in the backup root "
                   f"{'is not a readable backup' if len(errors) == 1 else 'are not readable backups'}: "
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
    if hidden:
        st.caption(f"{plural(hidden, 'backup')} not listed by the choice above.")
    return by_id.get(chosen)


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_listing(_store, url: str, token: object, bucket: int):
    errors: list[str] = []
    return _store.list_backups(errors=errors), errors


def list_backups_cached(store) -> tuple[list, list[str]]:
    """``store.list_backups()`` (newest first) plus unreadable-backup messages, cached until the store changes.

    Parsing and hash-checking 500 manifests takes a noticeable fraction of a
    second; every rerun of a page would pay it again without this cache. A
    store that cannot tell cheaply when it changed is listed again every 10 s.
    The returned objects are shared: do not modify them.
    """
    import time

    token = store.change_token()
    bucket = int(time.time() // 10) if token is None else 0
    return _cached_listing(store, store.url, token, bucket)


def database_overview(settings) -> dict:
    """``db.database_info`` of the configured database (connects, and closes again)."""
    from backup_core.db import connect, database_info

    with connect(settings) as conn:
        return database_info(conn)
