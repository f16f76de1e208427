"""Create Backup: pick collections, optionally compress, watch each collection's documents done / total, rate, time left."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core.backup import BackupOptions, create_backup
from backup_core.context import open_operation
from webui import common
from webui.progress import CollectionProgress

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
        format_func=lambda n: f"{n} ({common.plural(live[n]['count'], 'document')})")
    compress = st.checkbox("Compress the CSV files (gzip)", value=False, key="create_compress",
                           help="Smaller files; spreadsheets cannot open .csv.gz directly.")
    submitted = st.form_submit_button("Create backup", key="create_submit", type="primary")


def _run(names: list[str], compress: bool):
    """Back up, with one progress bar per collection: documents done / total, rate, time left."""
    lines = {n: CollectionProgress(n, live.get(n, {}).get("count")) for n in names}
    bars = {n: st.progress(0.0, text=lines[n].waiting_text()) for n in names}

    def progress(collection: str, done: int, total: int) -> None:
        line, bar = lines.get(collection), bars.get(collection)
        if line is not None:
            text = line.update(done, total)
            if text is not None:
                bar.progress(line.fraction, text=text)

    options = BackupOptions(collections=names, compress=compress, trigger="manual", user=settings.user)
    with open_operation(settings, "backup", details={"database": settings.db_name, **options.audit_details()}) as ctx:
        result = create_backup(ctx.db, ctx.store, options, progress=progress)
    for name, summary in result.to_json()["collections"].items():
        if name in bars:
            bars[name].progress(1.0, text=lines[name].finished_text(summary["count"]))
    return result


if submitted:
    if not chosen:
        st.error("Choose at least one collection to back up.")
    else:
        with st.status("Backing up…", expanded=True) as box:
            result = common.run_core(_run, chosen, compress)
            # stays open: the final line of each collection says what was written, how fast
            box.update(label="Backup finished" if result else "Backup failed",
                       state="complete" if result else "error", expanded=True)
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
