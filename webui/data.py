"""What the sections read from the core, cached where a rerun would otherwise pay for it again.

Streamlit reruns the whole script on every click. Listing 500 backups
(parsing and hash-checking their manifests), measuring the root and listing a
mirror take a noticeable fraction of a second each, so they are cached until
the store says it changed (``store.change_token()``), or for at most 10 s
when it cannot tell cheaply.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

import streamlit as st

from backup_core.listing import Listing, list_all
from webui.common import human_bytes, plural


def _bucket(token: object) -> int:
    return int(time.time() // 10) if token is None else 0


@st.cache_resource(show_spinner=False, max_entries=16)
def _cached_listing(_store, url: str, token: object, bucket: int) -> Listing:
    return list_all(_store)


def listing(store) -> Listing:
    """Every backup of the store, newest first, locked ones (key not configured) included; shared, do not modify."""
    token = store.change_token()
    return _cached_listing(store, store.url, token, _bucket(token))


class StorageFigures(NamedTuple):
    on_disk: int | None   # store.usage(): every byte under the root (backups, audit log, state)
    data_files: int       # the backups' own files, as their manifests record them
    backups: int


@st.cache_data(show_spinner=False, max_entries=16, ttl=60)
def _cached_usage(url: str, token: object, bucket: int, _store) -> int:
    return _store.usage()


def backup_storage(store, backups) -> StorageFigures:
    """The one place Home and Browse get their storage figures from (``on_disk`` is cached like the listing)."""
    token = store.change_token()
    try:
        used = _cached_usage(store.url, token, _bucket(token), store)
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


@st.cache_data(show_spinner=False, ttl=60, max_entries=8)
def _mirror_status(_settings, _store, url: str, mirror: str, token: object):
    from backup_core.context import open_store
    from backup_core.mirror import mirror_status

    return mirror_status(_store, open_store(_settings, mirror))


def mirror_status(settings, store):
    """``mirror.mirror_status`` of the configured mirror (None without one), cached for a minute."""
    if not settings.mirror_root:
        return None
    return _mirror_status(settings, store, store.url, settings.mirror_root, store.change_token())


def database_overview(settings) -> dict:
    """``db.database_info`` of the configured database (connects, and closes again)."""
    from backup_core.db import connect, database_info

    with connect(settings) as conn:
        return database_info(conn)
