"""Create Backup: pick collections, optionally compress, watch per-collection progress."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core.backup import BackupOptions, create_backup
from backup_core.context import open_operation
from webui import common

st.title("Create Backup")
common.require_login()
if not common.require_admin("Creating a backup"):
    st.stop()

settings = common.get_settings()
info = common.run_core(common.database_overview, settings)
if info is None:
    st.stop()
live = info["collections"]
if not live:
    st.info(f"The database {info['database']} has no collections, so there is nothing to back up.")
    st.stop()

st.caption(f"Database **{info['database']}** on `{info['uri']}` → backup root `{settings.backup_root}`")
with st.form("create_form"):
    chosen = st.multiselect(
        "Collections", list(live), default=list(live), key="create_collections",
        format_func=lambda n: f"{n} ({live[n]['count']} documents)")
    compress = st.checkbox("Compress the CSV files (gzip)", value=False, key="create_compress",
                           help="Smaller files; spreadsheets cannot open .csv.gz directly.")
    submitted = st.form_submit_button("Create backup", key="create_submit", type="primary")


def _run(names: list[str], compress: bool):
    bars = {n: st.progress(0.0, text=f"{n}: waiting") for n in names}

    def progress(collection: str, done: int, total: int) -> None:
        bar = bars.get(collection)
        if bar is not None:
            frac = 1.0 if total <= 0 else min(1.0, done / total)
            bar.progress(frac, text=f"{collection}: {frac:.0%}")

    options = BackupOptions(collections=names, compress=compress, trigger="manual", user=settings.user)
    with open_operation(settings, "backup", details={"database": settings.db_name, **options.audit_details()}) as ctx:
        return create_backup(ctx.db, ctx.store, options, progress=progress)


if submitted:
    if not chosen:
        st.error("Choose at least one collection to back up.")
    else:
        with st.status("Backing up…", expanded=True) as box:
            result = common.run_core(_run, chosen, compress)
            box.update(label="Backup finished" if result else "Backup failed",
                       state="complete" if result else "error")
        if result is not None:
            st.session_state["create_last_result"] = result.to_json()

last = st.session_state.get("create_last_result")
if last:
    st.success(f"Backup **{last['backup_id']}** created in {last['duration_s']:.2f} s "
               f"({last['day'].capitalize()}).")
    c1, c2, c3 = st.columns(3)
    c1.metric("Documents", sum(c["count"] for c in last["collections"].values()))
    c2.metric("Size", common.human_bytes(last["bytes"]))
    c3.metric("Duration", f"{last['duration_s']:.2f} s")
    st.dataframe(
        pd.DataFrame([{"collection": n, "documents": c["count"], "size": common.human_bytes(c["bytes"]),
                       "file": c["file"], "sha256": c["sha256"]} for n, c in last["collections"].items()]),
        hide_index=True, key="create_result_table")
    st.caption(f"Saved in `{last['path']}`")
