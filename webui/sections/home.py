"""Home: what needs attention first (failed restore drills too), the last proven restorable backup, then the
database, the last backup, and backups over time."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core import scheduler
from backup_core.listing import is_locked
from webui import charts, data, drill_view
from webui.common import human_age, human_bytes, local_time, local_zone, plural, run_core
from webui.ui import Ui
from webui.widgets import listing_warnings, mirror_warning, storage_section, where_backups_live


def render(ui: Ui) -> None:
    info = run_core(data.database_overview, ui.settings)
    found = run_core(data.listing, ui.store)
    entries = found.entries if found is not None else []
    last = found.newest(safety=False) if found is not None else None  # a restore's safety backup is not it
    status = scheduler.status_of(ui.settings, last_backup_at=last.created if last else None)
    for problem in status.problems:  # what needs attention first
        st.warning(problem.text + (". Create one under **Create Backup**." if problem.kind == "no-backup"
                                   else ". See the Audit Log and Auto Backup pages."))
    if found is not None:
        listing_warnings(found)
    backup_ids = {b.backup_id for b in entries} if found is not None else None
    drill_view.home_alerts(ui, backup_ids)
    mirror_warning(ui)
    _metrics(ui, status, last, [b for b in entries if not is_locked(b)])
    drill_view.proven_line(ui, backup_ids)
    where_backups_live(ui.settings, ui.store)
    st.subheader("Database")
    if info is not None:
        kind = "embedded demo server" if info.get("embedded") else "external MongoDB"
        st.markdown(f"**{info['database']}** on `{info['uri']}` ({kind})")
        colls = info.get("collections") or {}
        if colls:
            st.dataframe(pd.DataFrame([{"collection": n, "documents": c.get("count")} for n, c in colls.items()]),
                         hide_index=True, key=ui.k("home_collections"))
        else:
            st.info("The database has no collections.")
    if last is not None:
        _last_backup(last)
    readable = [b for b in entries if not is_locked(b)]
    if readable:
        _over_time(ui, readable)


def _metrics(ui: Ui, status, last, readable) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Last backup", human_age(last.created) if last else "never", help=last.backup_id if last else None)
    c2.metric("Next scheduled backup", human_age(status.next_run) if (status.next_run and status.running)
              else "not scheduled")
    c3.metric("Scheduler", status.state_label, help=f"every {status.interval_hours:g} h")
    storage = data.backup_storage(ui.store, readable)  # the same figures as Browse Backups
    c4.metric("Backup storage", human_bytes(storage.on_disk) if storage.on_disk is not None else "?",
              help=data.storage_text(storage, ui.store.url))


def _last_backup(last) -> None:
    st.subheader("Last backup")
    tz, zone = local_zone()
    when = f"created {human_age(last.created)} ({local_time(last.created, tz)} {zone})"
    if is_locked(last):
        st.markdown(f"`{last.backup_id}` ({last.day.capitalize()}), {when}: encrypted with key "
                    f"{last.key_fingerprint}, which this dashboard does not have.")
        return
    st.markdown(f"`{last.backup_id}` ({last.trigger}, {last.day.capitalize()}) — "
                f"{plural(last.total_documents, 'document')} in {plural(len(last.collections), 'collection')}, "
                f"{human_bytes(last.total_bytes)}, {when}")


def _over_time(ui: Ui, backups) -> None:
    st.subheader("Backups over time")
    tz, zone = local_zone()
    shown = backups[:charts.MAX_POINTS]
    size_chart, docs_chart = charts.size_and_documents(shown, tz, zone)
    left, right = st.columns(2)
    with left:
        st.caption("Size of each backup")
        st.altair_chart(size_chart, width="stretch", key=ui.k("home_chart_size"))
    with right:
        st.caption("Documents in each backup")
        st.altair_chart(docs_chart, width="stretch", key=ui.k("home_chart_documents"))
    if len(backups) > len(shown):
        st.caption(f"The newest {len(shown)} of {plural(len(backups), 'backup')}.")
    storage_section(ui, shown, name="home")
