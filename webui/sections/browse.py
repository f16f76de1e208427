"""Browse Backups: every backup by day of the week with its last restore drill, one in detail: its
collections, verify, restore drill, documents, downloads, delete.

Every backup is listed, in time order, including those encrypted with a key
this dashboard does not have: they are marked locked, with the key they need.
"""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from backup_core import browse, transfer
from backup_core.listing import is_locked
from backup_core.store import WEEKDAYS
from webui import data, drill_view
from webui.common import document_title, human_age, human_bytes, local_time, local_zone, run_core
from webui.ui import Ui
from webui.widgets import TRIGGER_WORDS, backup_picker, mirror_warning, storage_section, where_backups_live

SECTION = "browse"
PAGE_SIZE = 25


def render(ui: Ui) -> None:
    if not drill_view.is_drill_result(ui.result(SECTION)):  # a drill's result shows under Drill now
        ui.show_result(SECTION, once=True)
    found = run_core(data.listing, ui.store)
    if found is None:
        return
    if not found.entries:
        st.info(f"There are no backups in `{ui.store.url}` yet. Create one under **Create Backup**.")
        return
    where_backups_live(ui.settings, ui.store)
    readable = found.readable
    present = [t for t in TRIGGER_WORDS if any(b.trigger == t for b in readable)]
    wanted = st.multiselect("Show backups taken", present, default=present, key=ui.k("browse_triggers"),
                            format_func=TRIGGER_WORDS.get)
    shown = [b for b in found.entries if is_locked(b) or b.trigger in wanted]
    if not shown:
        st.info("No backup of the chosen kinds.")
        return
    mirror = mirror_warning(ui)
    drills = drill_view.last_drills(ui)
    _overview(ui, shown, mirror, drills)
    tz, zone = local_zone()
    with st.expander("Storage over time"):
        storage_section(ui, shown[:500], name="browse")
    st.caption(data.storage_text(data.backup_storage(ui.store, readable), ui.store.url) + ".")  # as on Home
    st.subheader("Backup details")
    info = backup_picker(ui, "browse", triggers=wanted)
    if info is None:
        return
    _details(ui, info, tz, zone)
    drill_view.drill_section(ui, SECTION, info, (drills or {}).get(info.backup_id))
    _changes(ui, info)
    _downloads(ui, info)
    _documents(ui, info)
    _delete(ui, info)


def _overview(ui: Ui, backups, mirror, drills: dict | None) -> None:
    by_day: dict[str, list] = {}
    for b in backups:
        by_day.setdefault(b.day, []).append(b)
    days = [d for d in WEEKDAYS if d in by_day]
    tz, zone = local_zone()
    copies = mirror is not None and not mirror.error
    for tab, day in zip(st.tabs([f"{d.capitalize()} ({len(by_day[d])})" for d in days]), days):
        rows = pd.DataFrame([_row(b, tz, zone, mirror if copies else None, drills) for b in by_day[day]])
        rows["documents"] = rows["documents"].astype("Int64")  # a locked backup's count is unknown: blank
        tab.dataframe(rows, hide_index=True, key=ui.k(f"browse_overview_{day}"), width="stretch",
                      height=min(400, 38 + 35 * len(rows)),
                      column_config={"last drill": st.column_config.TextColumn(width=150)})  # its whole date


def _row(b, tz, zone: str, mirror, drills: dict | None) -> dict:
    row = {"backup": b.backup_id, f"time ({zone})": local_time(b.created, tz)}
    drill = drill_view.mark(drills.get(b.backup_id), tz) if drills is not None else "?"  # ?: results unknown
    if is_locked(b):
        row.update({"trigger": "locked", "last drill": drill, "documents": None, "size": "?", "stored": "?",
                    "encrypted": f"key {b.key_fingerprint} (not configured)"})
    else:
        row.update({"trigger": f"safety (restore of {b.restore_of})" if b.restore_of else b.trigger,
                    "last drill": drill, "documents": b.total_documents, "size": human_bytes(b.total_bytes),
                    "stored": human_bytes(b.stored_bytes), "encrypted": f"key {b.key_fingerprint}" if b.encrypted
                    else "no"})
    if mirror is not None:
        row["second copy"] = "yes" if b.backup_id in mirror.in_mirror else "missing"
    return row


def _details(ui: Ui, info, tz, zone: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Created", human_age(info.created), help=f"{local_time(info.created, tz)} ({zone})")
    c2.metric("Trigger", info.trigger)
    c3.metric("Documents", info.total_documents)
    c4.metric("Size", human_bytes(info.total_bytes))
    st.caption(f"Database `{info.database}` · stored at `{info.location}`"
               + (f" · encrypted with key {info.key_fingerprint}" if info.encrypted else "")
               + (f" · taken before restoring {info.restore_of}" if info.restore_of else ""))
    verified = st.session_state.get(ui.k("browse_verified"), {}).get(info.backup_id)
    rows = []
    for name, c in info.collections.items():
        row = {"collection": name, "documents": c.count, "file": c.file, "size": human_bytes(c.bytes),
               "sha256": c.sha256[:16] + "…", "stored as": browse.stored_as(info, name),
               "stored": f"shared with {info.reused_from(name)}" if info.reused_from(name) else "in this backup"}
        if verified is not None:
            row["verify"] = verified["collections"].get(name, {}).get("status", "not checked")
        rows.append(row)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, key=ui.k("browse_collections"), width="stretch")
    else:
        st.info("This backup holds no collections"
                + (f" (it records {', '.join(info.absent_collections)} as not existing when it was taken)."
                   if info.absent_collections else "."))
    # verify on demand (reads every file, so not on every rerun); reading changes nothing: viewers may
    if st.button("Verify hashes and contents", key=ui.k("browse_verify")):
        with st.spinner("Verifying…"):
            res = run_core(ui.store.verify, info.backup_id)
        if res is not None:
            st.session_state.setdefault(ui.k("browse_verified"), {})[info.backup_id] = res.to_json()
            st.rerun()
    if verified is not None:
        if verified["ok"]:
            st.success(f"Verified: every file of {info.backup_id} matches its SHA-256 and document count.")
        else:
            st.error("This backup does NOT verify, do not restore it: " + "; ".join(verified["problems"]))


def _changes(ui: Ui, info) -> None:
    """An incremental backup's own step: what changed since the backup it builds on."""
    names = [n for n, e in info.collections.items() if e.incremental]
    if not names:
        return
    st.subheader("Changes since the previous backup")
    st.caption("This backup stores only what changed for these collections; it still restores, compares and "
               "exports all of its documents.")
    name = st.selectbox("Collection whose changes to show", names, key=ui.k("browse_changes_collection"))
    change = run_core(browse.changes_since_previous, ui.store, info, name, PAGE_SIZE)
    if change is None:
        return
    st.write(f"{change.changed} new or changed, {change.deleted} deleted")
    if change.documents:
        st.dataframe(pd.DataFrame(browse.table_rows(change.documents)).astype(str), hide_index=True,
                     width="stretch", key=ui.k("browse_changes_table"))
        if change.changed > PAGE_SIZE:
            st.caption(f"the first {PAGE_SIZE} of {change.changed}")
    if change.deleted_ids:
        st.write("Deleted (`_id`): " + ", ".join(str(browse.display_value(i)) for i in change.deleted_ids)
                 + (" …" if change.deleted > PAGE_SIZE else ""))


def _downloads(ui: Ui, info) -> None:
    st.subheader("Downloads")
    names = list(info.collections)
    d1, d2 = st.columns(2)
    if names:
        coll = d1.selectbox("Collection file", names, key=ui.k("browse_download_collection"))
        csv_name = browse.download_name(info, coll)
        d1.download_button(f"Download {csv_name}", data=lambda: browse.csv_download(ui.store, info, coll)[1],
                           file_name=f"{info.backup_id}_{csv_name}", mime="text/csv",
                           key=ui.k("browse_download_csv"), on_click="ignore")

    def _zip() -> bytes:
        buf = io.BytesIO()
        transfer.export_backup(ui.store, info.backup_id, buf, user=ui.user.name)
        return buf.getvalue()

    d2.write("Whole backup with its manifest, for `import` elsewhere.")
    d2.download_button("Download the backup as .zip", data=_zip, file_name=f"{info.backup_id}.zip",
                       mime="application/zip", key=ui.k("browse_download_zip"), on_click="ignore")


def _documents(ui: Ui, info) -> None:
    st.subheader("Documents")
    names = list(info.collections)
    v1, v2 = st.columns([1, 2])
    coll = v1.selectbox("Collection", names, key=ui.k("browse_doc_collection"),
                        format_func=lambda n: f"{n} ({info.collections[n].count})") if names else None
    query = v2.text_input("Search (case-insensitive, any field)", key=ui.k("browse_search"),
                          placeholder="e.g. a serial number, a name, a date")
    view, page_key = (info.backup_id, coll, query), ui.k("browse_page")
    if st.session_state.get(ui.k("browse_view")) != view:  # a new backup, collection or search: page 1
        st.session_state[ui.k("browse_view")] = view
        st.session_state[page_key] = 0
    page_no = st.session_state.get(page_key, 0)
    result = run_core(browse.find_documents, ui.store, info, coll, query, page_no, PAGE_SIZE) if coll else None
    if result is None:
        return
    if not result.items:
        st.info("No document matches." if query else "This collection is empty in this backup.")
    else:
        first = page_no * PAGE_SIZE + 1
        st.caption(f"Documents {first}–{first + len(result.items) - 1}"
                   + (f" matching “{query}”" if query else f" of {info.collections[coll].count}"))
        if st.toggle("Show as JSON", key=ui.k("browse_as_json")):
            for number, doc in enumerate(result.items, first):
                with st.expander(f"{number}. {document_title(doc)}"):
                    st.json(doc, expanded=True)
        else:
            st.dataframe(pd.DataFrame(browse.table_rows(result.items)).astype(str), hide_index=True,
                         key=ui.k("browse_documents"))
    p1, p2, p3 = st.columns([1, 1, 4])
    if p1.button("◀ Previous", key=ui.k("browse_prev"), disabled=page_no == 0):
        st.session_state[page_key] = max(0, page_no - 1)
        st.rerun()
    if p2.button("Next ▶", key=ui.k("browse_next"), disabled=not result.has_more):
        st.session_state[page_key] = page_no + 1
        st.rerun()
    p3.caption(f"Page {page_no + 1}")


def _delete(ui: Ui, info) -> None:
    if not ui.is_admin:
        return  # a viewer is shown no delete control (and the core call below checks the role too)
    with st.expander("Delete this backup"):
        st.write(f"This removes backup **{info.backup_id}** and its files for good. Type its id to confirm.")
        typed = st.text_input("Backup id", key=ui.k("browse_delete_confirm"), placeholder="type the backup id here")
        if not st.button("Delete backup", key=ui.k("browse_delete"), type="primary") \
                or not ui.allowed("Deleting a backup"):
            return
        if typed.strip() != info.backup_id:
            st.error(f"The id you typed does not match. Type {info.backup_id} exactly to delete it.")
        elif run_core(browse.delete_backup, ui.store, info.backup_id, user=ui.user.name) is not None:
            st.session_state.pop(ui.k("browse_delete_confirm"), None)
            ui.keep_result(SECTION, "success", f"Backup {info.backup_id} was deleted (recorded in the audit log).")
