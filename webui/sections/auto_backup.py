"""Auto Backup: the scheduler's state, its schedule, the clean-up policy, archive rules, notifications, run history,
manual runs.

The scheduler lives in ``backup_core.scheduler`` (one active instance per
backup root and database, on any host; the others on standby); its
schedule, state and history are in the metadata database, so every host
and dashboard shows the same. This section reads its typed status
(``SchedulerStatus``), calls the core, and keeps one outcome on screen.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from backup_core import notify, scheduler
from webui import archive_rules_view, data, retention_view
from webui.common import human_age, human_bytes, local_time, local_zone, run_core, when_text
from webui.ui import Ui
from webui.widgets import mirror_warning

SECTION = "auto"
HISTORY_LIMIT = 50
STATE_HELP = ("active: this dashboard takes the scheduled backups; active elsewhere: another process (named below) "
              "does, and this one takes over if it stops; not running: nobody takes automatic backups.")


def render(ui: Ui) -> None:
    tz, zone = local_zone()
    found = run_core(data.listing, ui.store)
    newest = found.newest(safety=False) if found is not None else None
    status = scheduler.status_of(ui.settings, last_backup_at=newest.created if newest else None)
    _state(ui, status, tz, zone)
    ui.show_result(SECTION, once=True)
    st.subheader("Schedule")
    if status.available:
        _schedule_form(ui, status)
        st.subheader("Clean-up policy")
        retention_view.policy_section(ui, status.config)
        st.subheader("Archive rules")
        archive_rules_view.rules_section(ui, status.config)
    _notifications(ui)
    _run_by_hand(ui)
    _history(ui, status, zone, tz)


def _state(ui: Ui, status: scheduler.SchedulerStatus, tz, zone: str) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Scheduler", status.state_label, help=STATE_HELP)
    c2.metric("Every", f"{status.configured_interval_hours:g} h", help="The saved interval.")
    c3.metric("Next run", human_age(status.next_run) if status.next_run else "–",
              help=f"{local_time(status.next_run, tz)} {zone}" if status.next_run else None)
    last = status.last_run
    c4.metric("Last run", human_age(last.started_at) if last else "never",
              help=f"{local_time(last.started_at, tz)} {zone}" if last else None)
    if not status.available:
        st.error(f"The scheduler's state cannot be read: {status.error}")
        return
    if status.running and status.interval_hours != status.configured_interval_hours:
        if status.interval_override:
            st.info(f"The running scheduler was started with `--every` and backs up every "
                    f"{status.interval_hours:g} h, not the saved {status.configured_interval_hours:g} h, until it "
                    "is restarted without it.")
        else:
            st.info(f"Saved: every {status.configured_interval_hours:g} h. The running scheduler still backs up "
                    f"every {status.interval_hours:g} h until it reads the new setting, within "
                    f"{status.applies_within_s:g} s; reload this page to see it.")
    if status.state == "here":
        st.caption(f"This dashboard takes the scheduled backups (since {local_time(status.owner_since, tz)}). "
                   f"Next run: {when_text(status.next_run, tz)}. Times in {zone}.")
    elif status.state == "elsewhere":
        st.caption(f"The scheduler on host **{status.owner_host}** takes the scheduled backups (since "
                   f"{local_time(status.owner_since, tz)}); this dashboard takes over if it stops. "
                   f"Next run: {when_text(status.next_run, tz)}. Times in {zone}.")
    elif status.state == "off":
        st.info("Automatic backups are switched off. Tick **Automatic backups enabled** below to turn them on.")
    else:
        st.info("No scheduler is running, so no automatic backups are taken. The dashboard starts one "
                "unless BACKUP_DASHBOARD_SCHEDULER=0; or run `python -m backup_core scheduler`.")
    for problem in status.problems:
        st.warning(problem.text + ".")
    if status.last_run is not None and not status.last_run.failed:
        st.caption(f"Last backup run: ok — backup {status.last_run.backup_id}, "
                   f"{when_text(status.last_run.started_at, tz)}.")
    mirror_warning(ui, quiet=False)


def _schedule_form(ui: Ui, status: scheduler.SchedulerStatus) -> None:
    config = status.config
    with st.form(ui.k("auto_settings_form")):
        enabled = st.checkbox("Automatic backups enabled", value=bool(config.enabled), key=ui.k("auto_enabled"))
        left, right = st.columns(2)
        interval = left.number_input(
            "Back up every (hours)", value=float(config.interval_hours or 1.0), step=0.1, format="%.2f",
            min_value=scheduler.MIN_INTERVAL_HOURS, max_value=scheduler.MAX_INTERVAL_HOURS, key=ui.k("auto_interval"),
            help=f"From {scheduler.MIN_INTERVAL_HOURS:g} h (6 minutes) to {scheduler.MAX_INTERVAL_HOURS:g} h "
                 "(one week).")
        max_mb = right.number_input("Max. backup root size (MB, 0 = none)", min_value=0, step=100,
                                    value=int((config.max_root_bytes or 0) // (1024 * 1024)), key=ui.k("auto_max_mb"),
                                    help="When the backup root grows past this size, a clean-up with the policy "
                                         "below runs after the next backup.")
        saved = st.form_submit_button("Save", key=ui.k("auto_save"), disabled=not ui.is_admin)
    if not ui.is_admin:
        st.caption("Changing the schedule needs the admin role.")
    elif saved and ui.allowed("Changing the schedule"):
        new = run_core(scheduler.schedule_from_form, config, interval_hours=interval, max_root_mb=max_mb,
                       enabled=enabled)
        if new is not None and run_core(scheduler.save_config, ui.settings, new, user=ui.user.name) is not None:
            here = run_core(scheduler.reload_config, ui.settings)
            elsewhere = "" if here or not status.running else (
                f" The scheduler on {status.owner_host} applies it within {status.applies_within_s:g} s.")
            ui.keep_result(SECTION, "success", f"Saved: every {new.interval_hours:g} h"
                           + (f", at most {human_bytes(new.max_root_bytes)}" if new.max_root_bytes else "")
                           + ("" if new.enabled else " (automatic backups are off)") + "." + elsewhere)


def _notifications(ui: Ui) -> None:
    st.subheader("Notifications")
    targets = notify.describe(ui.settings)
    if targets["configured"]:
        st.caption("A failed scheduled backup or clean-up, a database outage, and the recovery afterwards each "
                   "send one message to: " + ", ".join(f"`{t}`" for t in targets["targets"]))
    else:
        st.info("Notifications are not configured: set BACKUP_NOTIFY (environment or secrets.toml) to one or more "
                "apprise URLs, e.g. `mailto://user:password@example.com` or `json://host/path`.")
    for bad in targets["invalid"]:
        st.warning(f"BACKUP_NOTIFY has a URL apprise does not understand: {bad}")
    clicked = st.button("Send a test notification", key=ui.k("auto_test_notify"),
                        disabled=not (ui.is_admin and targets["configured"]))
    if clicked and ui.allowed("Sending a test notification"):  # checked here, not only by the disabled button
        res = run_core(notify.send_test, ui.settings)
        if res is not None:
            ui.keep_result(SECTION, "success" if res.sent else "error", res.to_text())


def _run_by_hand(ui: Ui) -> None:
    st.subheader("Run by hand")
    if not ui.is_admin:
        st.caption("Running backups needs the admin role.")
        return
    b1, b2 = st.columns(2)
    run_now = b1.button("Run now", key=ui.k("auto_run_now"), help="Take a backup now (trigger: manual).")
    check_now = b2.button("Auto-backup check", key=ui.k("auto_check_now"),
                          help="Back up only if the last backup is older than the interval.")
    if run_now and ui.allowed("Running a backup"):
        with st.spinner("Backing up…"):
            res = run_core(scheduler.run_scheduled_backup, ui.settings, trigger="manual", user=ui.user.name)
        if res is not None:  # a failed run is recorded in the history, not raised: its error says why
            if res.get("outcome") == "ok":
                ui.keep_result(SECTION, "success", f"Backup {res.get('backup_id')} created in {res.get('duration_s')} s.")
            else:
                ui.keep_result(SECTION, "error", f"The backup failed: {res.get('error')}.")
    elif check_now and ui.allowed("Running a backup"):
        with st.spinner("Checking…"):
            res = run_core(scheduler.auto_backup_check, ui.settings, user=ui.user.name)
        if res is not None:
            kind = "info" if not res.get("ran") else ("success" if res.get("outcome") == "ok" else "error")
            ui.keep_result(SECTION, kind, res.get("message") or str(res))


def _history(ui: Ui, status: scheduler.SchedulerStatus, zone: str, tz) -> None:
    st.subheader("Run history")
    st.caption(f"Scheduled runs, Run now, the auto-backup check and clean-ups, newest first (times in {zone}). "
               "Backups made under Create Backup are in the Audit Log.")
    history = run_core(scheduler.run_history, ui.settings, HISTORY_LIMIT) if status.available else None
    if not history:
        if history is not None:
            st.info("No runs yet. Scheduled runs, **Run now** and the auto-backup check appear here.")
        return
    rows = [{"time": local_time(h.get("started_at"), tz), "run": h.get("kind", "backup"),
             "trigger": h.get("trigger", ""), "result": h.get("outcome", ""), "duration (s)": h.get("duration_s"),
             "documents": (", ".join(f"{k}: {v}" for k, v in h["counts"].items())
                           if isinstance(h.get("counts"), dict) else str(h.get("counts") or "")),
             "backup": h.get("backup_id") or "", "error": h.get("error") or ""} for h in history]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=ui.k("auto_history"))
