"""Restore drills on the dashboard: the last proven restorable backup and failed drills (Home), each backup's
last drill and Drill now (Browse Backups).

A drill (``backup_core.drill``) restores one backup into a scratch database,
proves every collection (count, every document byte for byte, indexes,
options), times it and drops the scratch database; the live database is
never written. The dashboard runs it through ``drill.drill_backup``, as the
CLI and the scheduler do, so the result is kept as the backup's last drill,
audited, notified and exported as metrics in the same way. The results are
read from the metadata database on every rerun (one small query), so a drill
run by the scheduler or the CLI shows at once. This module only draws.
"""

from __future__ import annotations

from datetime import tzinfo

import pandas as pd
import streamlit as st

from backup_core import drill_results
from backup_core.drill import DrillFailed, drill_backup
from backup_core.errors import BackupError
from webui.common import human_age, local_time, local_zone, plural, show_error
from webui.progress import PhaseBar
from webui.ui import Result, Ui

# Home shows at most this many failed backups, newest drill first
MAX_FAILURES_SHOWN = 3
_DRILL_KEY = "drill"  # Result.data of a drill: {"drill": DrillResult.to_json()}
NEVER_HINT = ("run **Drill now** on a backup under **Browse Backups**, or `python -m backup_core drill --latest`; "
              "the scheduler also drills every few days")


# ---------------------------------------------------------------- reading the results

def last_drills(ui: Ui) -> dict[str, dict] | None:
    """Backup id -> its last drill; None, with a caption saying why, when the results cannot be read."""
    try:
        return drill_results.last_per_backup(ui.settings)
    except BackupError as exc:
        st.caption(f"Restore drill results are unknown: {exc}")
        return None


def mark(drill: dict | None, tz: tzinfo | None = None) -> str:
    """``✓ passed 2026-11-24 15:30`` / ``✗ failed …`` in local time; '' for a backup never drilled."""
    if not drill:
        return ""
    word = "✓ passed" if drill.get("ok") else "✗ failed"
    return f"{word} {local_time(drill.get('at'), tz, seconds=False)}"


def _failure_lines(drill: dict) -> str:
    return "\n".join(f"- {line}" for line in drill.get("failures") or ["(no detail was recorded)"])


# ---------------------------------------------------------------- Home

def home_alerts(ui: Ui, backup_ids: set[str] | None) -> None:
    """One ``st.error`` per backup whose last drill failed (until a later drill of it passes), newest first.

    ``backup_ids``: the backups that exist (a deleted backup's failure no longer needs attention);
    None when the listing could not be read (then every failure is shown).
    """
    try:
        drills = drill_results.last_per_backup(ui.settings)
    except BackupError:
        return  # the proven line below says the results are unknown
    failed = sorted((d for d in drills.values() if not d.get("ok")
                     and (backup_ids is None or d["backup_id"] in backup_ids)),
                    key=lambda d: str(d.get("at") or ""), reverse=True)
    tz, zone = local_zone()
    for d in failed[:MAX_FAILURES_SHOWN]:
        st.error(f"The restore drill of backup **{d['backup_id']}** FAILED "
                 f"({local_time(d.get('at'), tz)} {zone}, {d.get('trigger') or 'manual'}): it does not restore "
                 f"as backed up. Do not rely on it; a later drill of it that passes clears this.\n\n"
                 + _failure_lines(d))
    if len(failed) > MAX_FAILURES_SHOWN:
        st.error(f"{plural(len(failed) - MAX_FAILURES_SHOWN, 'more backup')} failed its last restore drill: "
                 "see the **last drill** column under **Browse Backups**.")


def proven_line(ui: Ui, backup_ids: set[str] | None) -> None:
    """``Last proven restorable: <id> at <local time>, restore took N s``, or that none is yet."""
    summary = drill_results.summary(ui.settings)  # never raises
    if not summary.get("available"):
        st.caption(f"Last proven restorable: unknown; the drill results cannot be read ({summary.get('error')}).")
        return
    passed = summary.get("last_success")
    if not passed:
        st.info(f"Last proven restorable: never drilled. No backup has been restored in a drill yet: {NEVER_HINT}.")
        return
    tz, zone = local_zone()
    gone = backup_ids is not None and passed["backup_id"] not in backup_ids
    st.markdown(f"**Last proven restorable:** `{passed['backup_id']}` at {local_time(passed.get('at'), tz)} "
                f"({zone}, {human_age(passed.get('at'))}), restore took "
                f"{float(passed.get('restore_s') or 0):.2f} s"
                + (" (that backup has since been deleted)" if gone else ""))


# ---------------------------------------------------------------- Browse: one backup

def is_drill_result(res: Result | None) -> bool:
    """Whether a section's result is a drill's (Browse draws it under Drill now, not at the top)."""
    return res is not None and isinstance(res.data, dict) and _DRILL_KEY in res.data


def drill_section(ui: Ui, section: str, info, last: dict | None) -> None:
    """The selected backup's last drill, Drill now for admins (with progress), and the result of this session's
    drill of it."""
    st.subheader("Restore drill")
    st.caption("A drill restores this backup into a scratch database, proves every document, index and option "
               "against the backup, times it and drops the scratch database. The live database is not touched.")
    tz, zone = local_zone()
    if last:
        took = f", restore took {float(last.get('restore_s') or 0):.2f} s" if last.get("ok") else ""
        st.markdown(f"Last drill: **{mark(last, tz)}** ({zone}; {last.get('trigger') or 'manual'}, by "
                    f"{last.get('user') or 'unknown'}){took}.")
    else:
        st.markdown("Last drill: this backup has never been drilled.")
    if not ui.is_admin:
        st.caption(f"Running a drill needs the admin role; {ui.user.name} ({ui.user.role}) can only look.")
    elif st.button("Drill now", key=ui.k("browse_drill"),
                   help="Restore into a scratch database, prove, time, drop; the result is kept with the backup") \
            and ui.allowed("Running a restore drill"):
        _run(ui, section, info)
    _show(ui, section, info.backup_id)


def _run(ui: Ui, section: str, info) -> None:
    bar = PhaseBar(st.progress(0.0, text=f"Starting the restore drill of {info.backup_id}…"), "drill")
    kept: tuple[str, str, dict] | None = None
    try:
        result = drill_backup(ui.settings, info.backup_id, progress=bar.callback)
        kept = ("success", _passed_text(result.to_json()), result.to_json())
    except DrillFailed as exc:  # kept as the backup's last drill, audited and notified by drill_backup
        kept = ("error", _failed_text(exc), exc.result.to_json())
    except Exception as exc:  # noqa: BLE001 - refused or could not run: one line, never a traceback
        ui.clear_result(section)
        show_error(exc)
    finally:
        bar.element.empty()
    if kept is not None:
        kind, text, data = kept
        ui.keep_result(section, kind, text, {_DRILL_KEY: data})  # reruns: the marks show the new result


def _passed_text(r: dict) -> str:
    rate = f" ({r['docs_per_s']:,.0f} documents/s)" if r.get("docs_per_s") else ""
    dropped = ("was dropped" if r.get("dropped")
               else "was NOT dropped (the next drill or clean-up drops it)")
    return (f"Restore drill of backup **{r['backup_id']}** passed: {plural(r['documents'], 'document')} in "
            f"{plural(len(r['collections']), 'collection')} restored in {r['restore_s']:.2f} s{rate}, "
            f"{r['duration_s']:.2f} s in all; every document, index and option matched the backup. "
            f"The scratch database `{r['target']}` {dropped}.")


def _failed_text(exc: DrillFailed) -> str:
    head = exc.headline[:1].upper() + exc.headline[1:]
    return f"{head}. Do not rely on this backup.\n\n" + _failure_lines(exc.result.to_json())


def _show(ui: Ui, section: str, backup_id: str) -> None:
    """This session's last drill result, while its backup is the one shown, until the next action replaces it."""
    res = ui.result(section)
    if not is_drill_result(res) or res.data[_DRILL_KEY].get("backup_id") != backup_id:
        return
    getattr(st, res.kind)(res.text)
    frame = result_frame(res.data[_DRILL_KEY])
    if not frame.empty:
        st.dataframe(frame, hide_index=True, width="stretch", key=ui.k("browse_drill_result"),
                     column_config={"seconds": st.column_config.TextColumn(
                                        help="time to restore: read, decode and write"),
                                    "what differed": st.column_config.TextColumn(width="large")})


def result_frame(result: dict) -> pd.DataFrame:
    """One row per collection: documents, ok, time to restore, documents/s, what differed ('–': not restored)."""
    rows = []
    for name, c in (result.get("collections") or {}).items():
        restored = c.get("restored") is not None
        rows.append({"collection": name, "documents": c.get("count"), "ok": "✓" if c.get("ok") else "✗",
                     "seconds": f"{c.get('restore_s') or 0:.3f}" if restored else "–",
                     "docs/s": f"{c['docs_per_s']:,.0f}" if restored and c.get("docs_per_s") else "–",
                     "what differed": "; ".join(c.get("problems") or [])})
    return pd.DataFrame(rows, columns=["collection", "documents", "ok", "seconds", "docs/s", "what differed"])


__all__ = ["last_drills", "mark", "home_alerts", "proven_line", "is_drill_result", "drill_section",
           "result_frame", "MAX_FAILURES_SHOWN"]
