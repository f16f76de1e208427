"""Auto Backup: the scheduler's state, its settings, notifications, its run history, and manual triggers.

The scheduler itself lives in ``backup_core.scheduler`` (one active instance
per backup root and database, on any host; the others on standby); its
schedule, state and history are in the metadata database, so every host
and dashboard shows the same. This page only reads them and calls the core.
Buttons store a one-line outcome in the session and rerun, so the state and
history shown are always the ones after the action.
"""

from __future__ import annotations

import os
import socket

import pandas as pd
import streamlit as st

from backup_core import notify, scheduler
from backup_core.context import open_store
from webui import retention_view
from webui.common import (flash, get_settings, human_age, human_bytes, is_admin, local_time, local_zone,
                          mirror_status_cached, plural, require_admin, require_login, run_core, show_flash)

HISTORY_LIMIT = 50


def _when(value, tz) -> str:
    """``2026-11-23 19:05:11 (in 55 min)`` in the shown zone; ``–`` for none."""
    if not value:
        return "–"
    return f"{local_time(value, tz)} ({human_age(value)})"


st.title("Auto Backup")
user = require_login()
settings = get_settings()
tz, zone = local_zone()
show_flash()

# ---- state ------------------------------------------------------------------------
status = run_core(scheduler.scheduler_status, settings) or {}
available = status.get("available", False)
config = scheduler.ScheduleConfig(**status["config"]) if available else None
owner = status.get("owner") or {}
if not available:
    state = "unknown"
    st.error(f"The scheduler's state cannot be read: {status.get('error')}")
elif not status.get("active"):
    state = "none"
elif owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
    state = "active"   # this dashboard process holds the lease and runs the jobs
else:
    state = "standby"  # another process runs the jobs; this one takes over if it stops
last = status.get("last_run") or {}
configured = status.get("configured_interval_hours", status.get("interval_hours", 1))
running = status.get("interval_hours", configured)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Scheduler", state, help="active: this dashboard runs the scheduled backups; standby: another "
          "process (shown below) runs them and this one takes over if it stops; none: no scheduler runs.")
c2.metric("Every", f"{configured:g} h", help="The saved interval.")
c3.metric("Next run", human_age(status["next_run"]) if status.get("next_run") else "–",
          help=f"{local_time(status['next_run'], tz)} {zone}" if status.get("next_run") else None)
c4.metric("Last run", human_age(last.get("started_at")) if last else "never",
          help=f"{local_time(last['started_at'], tz)} {zone}" if last.get("started_at") else None)
if owner and running != configured:
    if status.get("interval_override"):
        st.info(f"The running scheduler was started with `--every` and backs up every {running:g} h, "
                f"not the saved {configured:g} h, until it is restarted without it.")
    else:
        st.info(f"Saved: every {configured:g} h. The running scheduler (on {owner.get('host')}) still backs up "
                f"every {running:g} h until it reads the new setting, within "
                f"{max(1, round(float(owner.get('lease_seconds') or 30) / 3)):g} s; reload this page to see it.")
if owner:
    st.caption(f"Scheduler owner: {owner.get('owner')} (pid {owner.get('pid')} on {owner.get('host')}, "
               f"since {local_time(owner.get('since'), tz)}, fencing token {owner.get('token')}). "
               f"Next run: {_when(status.get('next_run'), tz)}. Times in {zone}.")
elif not available:
    pass  # said above
elif status.get("enabled") is False:
    st.info("Automatic backups are switched off. Tick **Automatic backups enabled** below to turn them on.")
else:
    st.info("No scheduler is running, so no automatic backups are taken. The dashboard starts one "
            "unless BACKUP_DASHBOARD_SCHEDULER=0; or run `python -m backup_core scheduler`.")
result = status.get("last_result") or {}
if result.get("outcome") == "error":
    st.warning(f"The last backup run ({result.get('trigger')}, {_when(result.get('at'), tz)}) failed: "
               f"{result.get('error')}. Check the database connection and the backup root, then click "
               "**Run now**.")
elif result:
    st.caption(f"Last backup run: {result.get('outcome')} — backup {result.get('backup_id')}, "
               f"{_when(result.get('at'), tz)}.")
if settings.mirror_root:
    mirror = run_core(mirror_status_cached, settings, open_store(settings))
    if mirror is not None and mirror.error:
        st.warning(f"The second copy in `{mirror.mirror}` cannot be read: {mirror.error}")
    elif mirror is not None and mirror.behind:
        st.warning(f"The second copy in `{mirror.mirror}` lacks {plural(len(mirror.missing), 'backup')}; the "
                   "scheduler copies what is missing after each backup.")
    elif mirror is not None:
        st.caption(f"Second copy: every backup is also in `{mirror.mirror}`.")

# ---- settings ---------------------------------------------------------------------
st.subheader("Schedule")
if config is not None:
    with st.form("auto_settings_form"):
        enabled = st.checkbox("Automatic backups enabled", value=bool(config.enabled), key="auto_enabled")
        left, right = st.columns(2)
        # no min/max on the widget: a value out of range gets a clear error on Save, not a silent clamp
        interval = left.number_input(
            "Back up every (hours)", value=float(config.interval_hours or 1.0), step=0.5, format="%.2f",
            key="auto_interval",
            help=f"From {scheduler.MIN_INTERVAL_HOURS:g} h (6 minutes) to {scheduler.MAX_INTERVAL_HOURS:g} h "
                 "(one week).")
        max_mb = right.number_input("Max. backup root size (MB, 0 = none)",
                                    value=int((config.max_root_bytes or 0) // (1024 * 1024)), step=100,
                                    key="auto_max_mb", help="When the backup root grows past this size, a "
                                    "clean-up with the policy below runs after the next backup.")
        saved = st.form_submit_button("Save", disabled=not is_admin())
    if not is_admin():
        require_admin("Changing the schedule")
    elif saved:
        if max_mb is None or max_mb < 0:
            st.error("Not saved: the maximum backup root size must be 0 (no limit) or more MB.")
        else:
            new = scheduler.ScheduleConfig(interval_hours=round(float(interval or 0), 3),
                                           retention_days=config.retention_days, policy=config.policy,
                                           max_root_bytes=int(max_mb) * 1024 * 1024 or None,
                                           enabled=bool(enabled), drill_every_days=config.drill_every_days)
            # save_config validates (0.1..168 h) and raises UsageError, shown by run_core as an error
            if run_core(scheduler.save_config, settings, new, user=user.name) is not None:
                here = run_core(scheduler.reload_config, settings)
                elsewhere = "" if here or not owner else (
                    f" The scheduler on {owner.get('host')} applies it within "
                    f"{max(1, round(float(owner.get('lease_seconds') or 30) / 3)):g} s.")
                flash("success", f"Saved: every {new.interval_hours:g} h"
                      + (f", at most {human_bytes(new.max_root_bytes)}" if new.max_root_bytes else "")
                      + ("" if new.enabled else " (automatic backups are off)") + "." + elsewhere)

    st.subheader("Clean-up policy")
    retention_view.policy_section(settings, config, user)

# ---- notifications ------------------------------------------------------------------
st.subheader("Notifications")
targets = notify.describe(settings)
if targets["configured"]:
    st.caption("A failed scheduled backup or clean-up, a database outage, and the recovery afterwards each "
               "send one message to: " + ", ".join(f"`{t}`" for t in targets["targets"]))
else:
    st.info("Notifications are not configured: set BACKUP_NOTIFY (environment or secrets.toml) to one or more "
            "apprise URLs, e.g. `mailto://user:password@example.com` or `json://host/path`.")
for bad in targets["invalid"]:
    st.warning(f"BACKUP_NOTIFY has a URL apprise does not understand: {bad}")
if st.button("Send a test notification", key="auto_test_notify", disabled=not (is_admin() and targets["configured"])):
    res = run_core(notify.send_test, settings)
    if res is not None:
        flash("success" if res.sent else "error", res.to_text())

# ---- actions ----------------------------------------------------------------------
st.subheader("Run by hand")
admin = is_admin()
b1, b2 = st.columns(2)
run_now = b1.button("Run now", key="auto_run_now", disabled=not admin,
                    help="Take a backup now (trigger: manual).")
check_now = b2.button("Auto-backup check", key="auto_check_now", disabled=not admin,
                      help="Back up only if the last backup is older than the interval.")
if not admin:
    st.caption("Running backups needs the admin role. A clean-up runs from **Clean-up policy** above.")
elif run_now:
    with st.spinner("Backing up…"):
        res = run_core(scheduler.run_scheduled_backup, settings, trigger="manual", user=user.name)
    if res is not None:  # a failed run is recorded in the history, not raised
        if res.get("outcome") == "ok":
            flash("success", f"Backup {res.get('backup_id')} created in {res.get('duration_s')} s.")
        flash("error", f"The backup failed: {res.get('error')}. Check the database connection and the "
                       "backup root, then try again.")
elif check_now:
    with st.spinner("Checking…"):
        res = run_core(scheduler.auto_backup_check, settings, user=user.name)
    if res is not None:
        kind = "info" if not res.get("ran") else ("success" if res.get("outcome") == "ok" else "error")
        flash(kind, res.get("message") or str(res))

# ---- history ----------------------------------------------------------------------
st.subheader("Run history")
st.caption(f"Scheduled runs, Run now, the auto-backup check and clean-ups, newest first (times in {zone}). "
           "Backups made on the Create Backup page are in the Audit Log.")
history = run_core(scheduler.run_history, settings, HISTORY_LIMIT) if available else None
if history:
    rows = []
    for h in history:
        counts = h.get("counts") or {}
        rows.append({
            "time": local_time(h.get("started_at"), tz),
            "run": h.get("kind", "backup"),
            "trigger": h.get("trigger", ""),
            "duration (s)": h.get("duration_s"),
            "documents": ", ".join(f"{k}: {v}" for k, v in counts.items()) if isinstance(counts, dict)
            else str(counts),
            "result": h.get("outcome", ""),
            "backup": h.get("backup_id") or "",
            "error": h.get("error") or "",
        })
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="auto_history")
elif history is not None:
    st.info("No runs yet. Scheduled runs, **Run now** and the auto-backup check appear here.")
