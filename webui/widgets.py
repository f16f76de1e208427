"""Blocks several sections show, written once: where backups live, warnings, the backup picker, storage.

Option labels never hold a relative time ("2 min ago"): Streamlit matches a
selectbox's choice by its label, so a label that changes while the page is
open would lose the choice.
"""

from __future__ import annotations

import streamlit as st

from backup_core.listing import Listing, is_locked
from backup_core.store import WEEKDAYS
from webui import data
from webui.common import local_time, local_zone, plural, run_core
from webui.ui import Ui

TRIGGER_WORDS = {"manual": "by hand", "scheduled": "by the scheduler", "safety": "by restores (safety backups)"}


def where_backups_live(settings, store) -> None:
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
    st.markdown(f"Backups are stored in the {place}; {crypt}{mirror}.")


def mirror_warning(ui: Ui, *, quiet: bool = True) -> object:
    """The second copy's state (BACKUP_MIRROR_ROOT): a warning when it cannot be read or lacks backups;
    ``quiet=False`` also says when it is complete. Returns the ``MirrorStatus`` (None without a mirror)."""
    mirror = run_core(data.mirror_status, ui.settings, ui.store)
    if mirror is None:
        return None
    if mirror.error:
        st.warning(f"The second copy in `{mirror.mirror}` cannot be read: {mirror.error}")
    elif mirror.behind:
        st.warning(f"The second copy in `{mirror.mirror}` lacks {plural(len(mirror.missing), 'backup')}; the "
                   "scheduler copies what is missing after each backup, or run `copy --all-missing --to` by hand.")
    elif not quiet:
        st.caption(f"Second copy: every backup is also in `{mirror.mirror}`.")
    return mirror


def listing_warnings(listing: Listing, *, limit: int = 3) -> None:
    """Locked backups (their key is not configured) and folders that are not readable backups."""
    locked = listing.locked_text()
    if locked:
        st.warning(locked[0].upper() + locked[1:] + ".")
    errors = listing.unreadable
    if errors:
        st.warning(f"{plural(len(errors), 'folder')} in the backup root "
                   f"{'is not a readable backup' if len(errors) == 1 else 'are not readable backups'}: "
                   + "; ".join(errors[:limit]) + (" …" if len(errors) > limit else ""))


def backup_label(info, tz=None) -> str:
    """``20261124T143022Z · 2026-11-24 15:30 · manual · 210 docs`` (no relative time: see the module docstring)."""
    if is_locked(info):
        return f"{info.backup_id} · {local_time(info.created, tz, seconds=False)} · locked (key {info.key_fingerprint})"
    trigger = info.trigger
    if trigger == "safety" and info.restore_of:
        trigger = f"safety, taken before restoring {info.restore_of}"
    return (f"{info.backup_id} · {local_time(info.created, tz, seconds=False)} · {trigger} · "
            f"{plural(info.total_documents, 'doc')}" + (" · encrypted" if info.encrypted else ""))


def backup_picker(ui: Ui, name: str, label: str = "Backup", *, include_safety: bool = True,
                  triggers: list[str] | None = None):
    """Pick a readable backup: a day of the week, then a backup of that day (newest first).

    Keys ``{name}_day`` and ``{name}_backup`` (by backup id). The first choice
    is the newest backup that is not a safety backup. ``include_safety=False``
    leaves out the safety backups restores take; ``triggers`` keeps only those.
    Returns the chosen ``BackupInfo``, or None when there is none.
    """
    found = run_core(data.listing, ui.store)
    if found is None:
        return None
    listing_warnings(found)
    readable = found.readable
    backups = [b for b in readable if (include_safety or b.trigger != "safety")
               and (triggers is None or b.trigger in triggers)]
    hidden_safety = sum(1 for b in readable if b.trigger == "safety" and b not in backups)
    if not backups:
        st.info("No backup to show with the choice above." if readable else
                "There are no readable backups yet. Create one under **Create Backup**.")
        return None
    by_day: dict[str, list] = {}
    for b in backups:
        by_day.setdefault(b.day, []).append(b)
    days = [d for d in WEEKDAYS if d in by_day]
    first = next((b for b in backups if b.trigger != "safety"), backups[0])
    tz, _ = local_zone()
    cols = st.columns([1, 3])
    day = cols[0].selectbox("Day of the week", days, index=days.index(first.day), key=ui.k(f"{name}_day"),
                            format_func=lambda d: f"{d.capitalize()} ({len(by_day[d])})")
    choices = by_day.get(day) or []
    if not choices:
        return None
    by_id = {b.backup_id: b for b in choices}
    ids = list(by_id)
    default = next((i for i, b in enumerate(choices) if b.trigger != "safety"), 0)
    chosen = cols[1].selectbox(label, ids, index=default, format_func=lambda i: backup_label(by_id[i], tz),
                               key=ui.k(f"{name}_backup"))
    if hidden_safety:
        st.caption(f"{plural(hidden_safety, 'safety backup')} (taken by restores before they changed data) "
                   "not listed by the choice above.")
    return by_id.get(chosen)


def storage_section(ui: Ui, backups, *, name: str) -> None:
    """The storage picture Home and Browse both show: what is stored over time, and per collection."""
    from webui import charts

    backups = [b for b in backups if not is_locked(b)]
    if not backups:
        return
    tz, zone = local_zone()
    st.markdown("**Storage over time**: the total the backups take in storage, and what they would take "
                "without sharing and compression (unchanged collections are stored once)")
    st.altair_chart(charts.storage_over_time(backups, tz, zone), width="stretch", key=ui.k(f"{name}_chart_storage"))
    st.dataframe(charts.storage_by_collection(backups), hide_index=True, key=ui.k(f"{name}_storage_by_collection"))

