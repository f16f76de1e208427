"""Auto Backup: the scheduler's state, its settings, its run history, and manual triggers.

The scheduler itself lives in ``backup_core.scheduler`` (one active instance
per backup root, the others on standby); this page only reads its state and
config and calls it. Buttons store a one-line outcome in the session and
rerun, so the state and history shown are always the ones after the action.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from backup_core import scheduler
from webui.common import (get_settings, human_age, human_bytes, is_admin, require_admin,
                          require_login, run_core)

FLASH = "auto_flash"
HISTORY_LIMIT = 50


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)
    st.rerun()


def _when(value) -> str:
    if not value:
        return "–"
    return f"{value} ({human_age(value)})"


st.title("Auto Backup")
user = require_login()
settings = get_settings()
root = settings.backup_root

flash = st.session_state.pop(FLASH, None)
if flash:
    getattr(st, flash[0])(flash[1])

# ---- state ------------------------------------------------------------------------
status = run_core(scheduler.scheduler_status, root) or {}
config = run_core(scheduler.load_config, root)
owner = status.get("owner") or {}
if not status.get("active"):
    state = "none"
elif owner.get("pid") == os.getpid():
    state = "active"   # this dashboard process holds the lease and runs the jobs
else:
    state = "standby"  # another process runs the jobs; this one takes over if it stops
last = status.get("last_run") or {}
c1, c2, c3, c4 = st.columns(4)
c1.metric("Scheduler", state, help="active: this dashboard runs the scheduled backups; standby: another "
          "process (shown below) runs them and this one takes over if it stops; none: no scheduler runs.")
c2.metric("Every", f"{status.get('interval_hours', 1):g} h")
c3.metric("Next run", human_age(status["next_run"]) if status.get("next_run") else "–")
c4.metric("Last run", human_age(last.get("started_at")) if last else "never")
if owner:
    st.caption(f"Scheduler owner: {owner.get('owner')} (pid {owner.get('pid')} on {owner.get('host')}, "
               f"since {owner.get('since')}). Next run: {_when(status.get('next_run'))}.")
elif status.get("enabled") is False:
    st.info("Automatic backups are switched off. Tick **Automatic backups enabled** below to turn them on.")
else:
    st.info("No scheduler is running, so no automatic backups are taken. The dashboard starts one "
            "unless BACKUP_DASHBOARD_SCHEDULER=0; or run `python -m backup_core scheduler`.")
result = status.get("last_result") or {}
if result.get("outcome") == "error":
    st.warning(f"The last backup run ({result.get('trigger')}, {_when(result.get('at'))}) failed: "
               f"{result.get('error')}. Check the database connection and the backup root, then click "
               "**Run now**.")
elif result:
    st.caption(f"Last backup run: {result.get('outcome')} — backup {result.get('backup_id')}, "
               f"{_when(result.get('at'))}.")

# ---- settings ---------------------------------------------------------------------
st.subheader("Settings")
if config is not None:
    with st.form("auto_settings_form"):
        enabled = st.checkbox("Automatic backups enabled", value=bool(config.enabled), key="auto_enabled")
        left, mid, right = st.columns(3)
        # clamp: a config written by the CLI may lie outside what the widgets offer
        interval = left.number_input("Back up every (hours)", min_value=0.1, max_value=168.0,
                                     value=min(168.0, max(0.1, float(config.interval_hours or 1.0))),
                                     step=0.1, format="%.1f", key="auto_interval",
                                     help="From 0.1 h (6 minutes) to 168 h (one week).")
        retention = mid.number_input("Keep backups for (days)", min_value=0.1, max_value=3650.0,
                                     value=min(3650.0, max(0.1, float(config.retention_days or 7))),
                                     step=1.0, format="%.1f", key="auto_retention",
                                     help="The weekly clean-up deletes older backups; the newest one is "
                                          "always kept.")
        max_mb = right.number_input("Max. backup root size (MB, 0 = none)", min_value=0,
                                    value=int((config.max_root_bytes or 0) // (1024 * 1024)), step=100,
                                    key="auto_max_mb", help="When the backup root grows past this size, a "
                                    "clean-up with the retention period above runs after the next backup.")
        saved = st.form_submit_button("Save", disabled=not is_admin())
    if not is_admin():
        require_admin("Changing the schedule")
    elif saved:
        new = scheduler.ScheduleConfig(interval_hours=round(float(interval), 3),
                                       retention_days=round(float(retention), 3),
                                       max_root_bytes=int(max_mb) * 1024 * 1024 or None,
                                       enabled=bool(enabled))
        # save_config validates (0.1..168 h) and raises UsageError, shown by run_core
        if run_core(lambda: scheduler.save_config(root, new, user=user.name) or True):
            _flash("success", f"Saved: every {new.interval_hours:g} h, keep {new.retention_days} days"
                   + (f", at most {human_bytes(new.max_root_bytes)}" if new.max_root_bytes else "")
                   + ("" if new.enabled else " (automatic backups are off)") + ".")

# ---- actions ----------------------------------------------------------------------
st.subheader("Run by hand")
admin = is_admin()
b1, b2, b3 = st.columns(3)
run_now = b1.button("Run now", key="auto_run_now", disabled=not admin,
                    help="Take a backup now (trigger: manual).")
clean_now = b2.button("Clean up now", key="auto_cleanup_now", disabled=not admin,
                      help="Delete backups older than the retention period (never the newest).")
check_now = b3.button("Auto-backup check", key="auto_check_now", disabled=not admin,
                      help="Back up only if the last backup is older than the interval.")
if not admin:
    st.caption("Running backups and clean-ups needs the admin role.")
elif run_now:
    with st.spinner("Backing up…"):
        res = run_core(scheduler.run_scheduled_backup, settings, trigger="manual", user=user.name)
    if res is not None:  # a failed run is recorded in the history, not raised
        if res.get("outcome") == "ok":
            _flash("success", f"Backup {res.get('backup_id')} created in {res.get('duration_s')} s.")
        _flash("error", f"The backup failed: {res.get('error')}. Check the database connection and the "
                        "backup root, then try again.")
elif clean_now:
    with st.spinner("Cleaning up…"):
        res = run_core(scheduler.run_cleanup_now, settings, user=user.name)
    if res is not None:
        _flash("success", f"Clean-up deleted {len(res.deleted)} backup(s), kept {res.kept}, "
                          f"freed {human_bytes(res.freed_bytes)}.")
elif check_now:
    with st.spinner("Checking…"):
        res = run_core(scheduler.auto_backup_check, settings, user=user.name)
    if res is not None:
        kind = "info" if not res.get("ran") else ("success" if res.get("outcome") == "ok" else "error")
        _flash(kind, res.get("message") or str(res))

# ---- history ----------------------------------------------------------------------
st.subheader("Run history")
st.caption("Scheduled runs, Run now, the auto-backup check and clean-ups, newest first. Backups made on the "
           "Create Backup page are in the Audit Log.")
history = run_core(scheduler.run_history, root, HISTORY_LIMIT)
if history:
    rows = []
    for h in history:
        counts = h.get("counts") or {}
        rows.append({
            "time": h.get("started_at", ""),
            "run": h.get("kind", "backup"),
            "trigger": h.get("trigger", ""),
            "duration (s)": h.get("duration_s"),
            "documents": ", ".join(f"{k}: {v}" for k, v in counts.items()) if isinstance(counts, dict)
            else str(counts),
            "result": h.get("outcome", ""),
            "backup": h.get("backup_id") or "",
            "error": h.get("error") or "",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
elif history is not None:
    st.info("No runs yet. Scheduled runs, **Run now** and the auto-backup check appear here.")
