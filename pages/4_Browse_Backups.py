"""Browse Backups: backups by day of the week, their collections, verify, documents, downloads, delete."""

from __future__ import annotations

import io

import pandas as pd
import streamlit as st

from backup_core import browse
from backup_core.context import open_store
from backup_core.store import WEEKDAYS
from webui import common

PAGE_SIZE = 25

st.title("Browse Backups")
user = common.require_login()
settings = common.get_settings()
store = open_store(settings)

deleted = st.session_state.pop("browse_deleted", None)
if deleted:
    st.success(f"Backup {deleted} was deleted (recorded in the audit log).")

listing = common.run_core(common.list_backups_cached, store)
if listing is None:
    st.stop()
backups, errors = listing
if not backups:
    st.info(f"There are no backups in `{store.url}` yet. Create one on the Create Backup page.")
    st.stop()
st.markdown(common.where_backups_live(settings, store))

TRIGGERS = ["manual", "scheduled", "safety"]
present = [t for t in TRIGGERS if any(b.trigger == t for b in backups)]
wanted = st.multiselect("Show backups taken", present, default=present, key="browse_triggers",
                        format_func={"manual": "by hand", "scheduled": "by the scheduler",
                                     "safety": "by restores (safety backups)"}.get)
all_backups = backups
backups = [b for b in backups if b.trigger in wanted]
if not backups:
    st.info("No backup of the chosen kinds.")
    st.stop()
mirror = common.run_core(common.mirror_status_cached, settings, store) if settings.mirror_root else None
if mirror is not None and mirror.error:
    st.warning(f"The second copy in `{mirror.mirror}` cannot be read: {mirror.error}")
elif mirror is not None and mirror.behind:
    st.warning(f"The second copy in `{mirror.mirror}` lacks {common.plural(len(mirror.missing), 'backup')}.")

# ---- overview: every backup, grouped by day of the week
by_day: dict[str, list] = {}
for b in backups:
    by_day.setdefault(b.day, []).append(b)
days = [d for d in WEEKDAYS if d in by_day]
tz, zone = common.local_zone()
with st.expander("Storage over time"):
    common.storage_section(backups[:500], tz, zone, key="browse")
st.caption(common.storage_text(common.backup_storage(store, all_backups), store.url) + ".")  # the same as Home
for tab, day in zip(st.tabs([f"{d.capitalize()} ({len(by_day[d])})" for d in days]), days):
    with tab:
        st.dataframe(
            pd.DataFrame([{"backup": b.backup_id, "created": common.human_age(b.created),
                           f"time ({zone})": common.local_time(b.created, tz),
                           "trigger": b.trigger if not b.restore_of else f"safety (before restoring {b.restore_of})",
                           "collections": len(b.collections), "documents": b.total_documents,
                           "size": common.human_bytes(b.total_bytes),
                           "stored": common.human_bytes(b.stored_bytes),
                           "encrypted": "yes" if b.encrypted else "no",
                           **({"second copy": "yes" if b.backup_id in mirror.in_mirror else "missing"}
                              if mirror is not None and not mirror.error else {})}
                          for b in by_day[day]]),
            hide_index=True, key=f"browse_overview_{day}", height=min(400, 38 + 35 * len(by_day[day])))

# ---- one backup in detail
st.subheader("Backup details")
info = common.backup_picker(store, "browse", triggers=wanted)
if info is None:
    st.stop()

c1, c2, c3, c4 = st.columns(4)
c1.metric("Created", common.human_age(info.created), help=f"{common.local_time(info.created, tz)} ({zone})")
c2.metric("Trigger", info.trigger)
c3.metric("Documents", info.total_documents)
c4.metric("Size", common.human_bytes(info.total_bytes))
st.caption(f"Database `{info.database}` · stored at `{info.location}`"
           + (f" · encrypted with key {info.key_fingerprint}" if info.encrypted else "")
           + (f" · taken before restoring {info.restore_of}" if info.restore_of else ""))

verified = st.session_state.get("browse_verified", {}).get(info.backup_id)
rows = []
for name, c in info.collections.items():
    row = {"collection": name, "documents": c.count, "file": c.file,
           "size": common.human_bytes(c.bytes), "sha256": c.sha256[:16] + "…",
           "stored": f"shared with {info.reused_from(name)}" if info.reused_from(name) else "in this backup"}
    if verified is not None:
        row["verify"] = verified["collections"].get(name, {}).get("status", "not checked")
    rows.append(row)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="browse_collections")
else:
    st.info("This backup holds no collections"
            + (f" (it records {', '.join(info.absent_collections)} as not existing when it was taken)."
               if info.absent_collections else "."))

# verify on demand (reads every file, so not on every rerun)
if st.button("Verify hashes and contents", key="browse_verify"):
    with st.spinner("Verifying…"):
        res = common.run_core(store.verify, info.backup_id)
    if res is not None:
        st.session_state.setdefault("browse_verified", {})[info.backup_id] = res.to_json()
        verified = res.to_json()
        st.rerun()
if verified is not None:
    if verified["ok"]:
        st.success(f"Verified: every file of {info.backup_id} matches its SHA-256 and document count.")
    else:
        st.error("This backup does NOT verify, do not restore it: " + "; ".join(verified["problems"]))

# ---- downloads
names = list(info.collections)
st.subheader("Downloads")
d1, d2 = st.columns(2)
with d1:
    if names:
        dl_coll = st.selectbox("Collection file", names, key="browse_download_collection")
        csv_name = info.collections[dl_coll].file.removesuffix(".gz")

        def _csv() -> bytes:  # read when clicked; a compressed file is served as plain CSV
            return browse.csv_download(store, info, dl_coll)[1]

        st.download_button(f"Download {csv_name}", data=_csv, file_name=f"{info.backup_id}_{csv_name}",
                           mime="text/csv", key="browse_download_csv", on_click="ignore")
with d2:
    try:
        from backup_core import transfer
    except ImportError:
        transfer = None
    if transfer is None:
        st.caption("Zip export is not available in this installation (backup_core.transfer is missing).")
    else:
        def _zip() -> bytes:
            buf = io.BytesIO()
            transfer.export_backup(store, info.backup_id, buf, user=settings.user)
            return buf.getvalue()

        st.write("Whole backup with its manifest, for `import` elsewhere.")
        st.download_button("Download the backup as .zip", data=_zip, file_name=f"{info.backup_id}.zip",
                           mime="application/zip", key="browse_download_zip", on_click="ignore")

# ---- documents
st.subheader("Documents")
coll = None
v1, v2 = st.columns([1, 2])
with v1:
    if names:
        coll = st.selectbox("Collection", names, key="browse_doc_collection",
                            format_func=lambda n: f"{n} ({info.collections[n].count})")
with v2:
    query = st.text_input("Search (case-insensitive, any field)", key="browse_search",
                          placeholder="e.g. a serial number, a name, a date")
# a new backup, collection or search starts again at page 1
view = (info.backup_id, coll, query)
if st.session_state.get("browse_view") != view:
    st.session_state["browse_view"] = view
    st.session_state["browse_page"] = 0
page_no = st.session_state.get("browse_page", 0)

result = common.run_core(browse.find_documents, store, info, coll, query, page_no, PAGE_SIZE) if coll else None
if result is not None:
    if not result.items:
        st.info("No document matches." if query else "This collection is empty in this backup.")
    else:
        first = page_no * PAGE_SIZE + 1
        st.caption(f"Documents {first}–{first + len(result.items) - 1}"
                   + (f" matching “{query}”" if query else f" of {info.collections[coll].count}"))
        as_json = st.toggle("Show as JSON", key="browse_as_json")
        if as_json:
            for number, doc in enumerate(result.items, first):
                with st.expander(f"{number}. {common.document_title(doc)}"):
                    st.json(doc, expanded=True)
        else:
            st.dataframe(pd.DataFrame(browse.table_rows(result.items)).astype(str), hide_index=True,
                         key="browse_documents")
    p1, p2, p3 = st.columns([1, 1, 4])
    if p1.button("◀ Previous", key="browse_prev", disabled=page_no == 0):
        st.session_state["browse_page"] = max(0, page_no - 1)
        st.rerun()
    if p2.button("Next ▶", key="browse_next", disabled=not result.has_more):
        st.session_state["browse_page"] = page_no + 1
        st.rerun()
    p3.caption(f"Page {page_no + 1}")

# ---- delete
with st.expander("Delete this backup"):
    if common.require_admin("Deleting a backup"):
        st.write(f"This removes backup **{info.backup_id}** and its files for good. "
                 "Type its id to confirm.")
        typed = st.text_input("Backup id", key="browse_delete_confirm", placeholder="type the backup id here")
        if st.button("Delete backup", key="browse_delete", type="primary"):
            if typed.strip() != info.backup_id:
                st.error(f"The id you typed does not match. Type {info.backup_id} exactly to delete it.")
            elif common.run_core(browse.delete_backup, store, info.backup_id, user=settings.user) is not None:
                st.session_state.pop("browse_delete_confirm", None)
                st.session_state["browse_deleted"] = info.backup_id
                st.rerun()

if errors:
    st.warning(f"{common.plural(len(errors), 'folder')} in the backup root "
               f"{'is not a readable backup' if len(errors) == 1 else 'are not readable backups'}: "
               + "; ".join(errors[:5]))
