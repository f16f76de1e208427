"""Create Backup: pick collections, optionally compress, watch each collection's documents done / total, rate, time left."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core.backup import BackupOptions, create_backup
from backup_core.context import open_operation
from webui import data
from webui.common import human_bytes, plural, run_core
from webui.progress import CollectionProgress
from webui.ui import Ui

SECTION = "create"


def render(ui: Ui) -> None:
    if not ui.is_admin:
        st.info(f"Creating a backup needs the admin role; {ui.user.name} ({ui.user.role}) can only look. "
                "The backups are listed under **Browse Backups**.")
        return
    info = run_core(data.database_overview, ui.settings)
    if info is None:
        return
    live = info["collections"]
    if not live:
        st.info(f"The database {info['database']} has no collections, so there is nothing to back up.")
        return
    st.caption(f"Database **{info['database']}** on `{info['uri']}` → backup root `{ui.store.url}`")
    with st.form(ui.k("create_form")):
        chosen = st.multiselect("Collections", list(live), default=list(live), key=ui.k("create_collections"),
                                format_func=lambda n: f"{n} ({plural(live[n]['count'], 'document')})")
        compress = st.checkbox("Compress the CSV files (gzip)", value=False, key=ui.k("create_compress"),
                               help="Smaller files; spreadsheets cannot open .csv.gz directly.")
        submitted = st.form_submit_button("Create backup", key=ui.k("create_submit"), type="primary")
    if submitted and ui.allowed("Creating a backup"):
        if not chosen:
            ui.clear_result(SECTION)
            st.error("Choose at least one collection to back up.")
        else:
            with st.status("Backing up…", expanded=True) as box:
                result = run_core(_run, ui, chosen, compress, live)
                # stays open: the final line of each collection says what was written, how fast
                box.update(label="Backup finished" if result else "Backup failed",
                           state="complete" if result else "error", expanded=True)
            if result is None:
                ui.clear_result(SECTION)  # the error above is the result now
            else:
                ui.keep_result(SECTION, "success", f"Backup **{result['backup_id']}** created in "
                               f"{result['duration_s']:.2f} s ({result['day'].capitalize()}).", result, rerun=False)
    _show_last(ui)


def _run(ui: Ui, names: list[str], compress: bool, live: dict) -> dict:
    """Back up, with one progress bar per collection: documents done / total, rate, time left."""
    lines = {n: CollectionProgress(n, live.get(n, {}).get("count")) for n in names}
    bars = {n: st.progress(0.0, text=lines[n].waiting_text()) for n in names}

    def progress(collection: str, done: int, total: int) -> None:
        line, bar = lines.get(collection), bars.get(collection)
        if line is not None:
            text = line.update(done, total)
            if text is not None:
                bar.progress(line.fraction, text=text)

    settings = ui.settings
    options = BackupOptions(collections=names, compress=compress, trigger="manual", user=settings.user)
    with open_operation(settings, "backup", details={"database": settings.db_name, **options.audit_details()}) as ctx:
        result = create_backup(ctx.db, ctx.store, options, progress=progress)
    for name, summary in result.to_json()["collections"].items():
        if name in bars:
            bars[name].progress(1.0, text=lines[name].finished_text(summary["count"]))
    return result.to_json()


def _show_last(ui: Ui) -> None:
    res = ui.show_result(SECTION)
    last = res.data if res is not None else None
    if not last:
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Documents", sum(c["count"] for c in last["collections"].values()))
    c2.metric("Size", human_bytes(last["bytes"]))
    c3.metric("Duration", f"{last['duration_s']:.2f} s")
    st.dataframe(
        pd.DataFrame([{"collection": n, "documents": c["count"], "size": human_bytes(c["bytes"]),
                       "file": c["file"], "sha256": c["sha256"][:16] + "…"} for n, c in last["collections"].items()]),
        hide_index=True, key=ui.k("create_result_table"), width="stretch")
    # the whole hashes, where they fit and can be copied (a 64-digit column would be cut off in the table)
    st.code("\n".join(f"{c['sha256']}  {c['file']}" for c in last["collections"].values()), language=None)
    st.caption(f"SHA-256 of each file, as `sha256sum` prints them. Saved in `{last['path']}`")
