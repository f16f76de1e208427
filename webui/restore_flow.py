"""The Restore section's model: compare once, preview, restore, undo; the section (``sections/restore.py``) draws.

A comparison is computed once per (backup, collections, key) and kept in the
session as a ``StoredComparison`` (on disk); paging, filtering or any other
click reads it back. It is computed again only when asked, after a restore,
or when the live collections' document counts changed (``live_token``).
An undo is planned first (``plan_undo``: the dry run, kept for the restore
it was made for; another restore since puts it away) and run only when the
section has its typed confirmation (``undo``).
Every call that changes data checks the role first (``Ui.allowed`` is the
section's check; ``auth.require_admin`` here is the model's own, so no path
around the section changes data for a viewer) and goes through
``open_operation``, so a failure to reach the database is on the audit
record like any other. State lives under the ``Ui``'s key prefix.
"""

from __future__ import annotations

from typing import Callable

import streamlit as st

from backup_core import auth
from backup_core import undo as undo_log
from backup_core.paged_compare import StoredComparison, live_token
from backup_core.context import open_context, open_operation
from backup_core.errors import RestoreRefused
from backup_core.restore import RestoreOptions, RestoreResult, plan_restore, restore_backup
from backup_core.undo import RestoreRecord
from webui.ui import Ui

SECTION = "restore"


class RestoreFlow:
    """One Restore section's state and actions, for one ``Ui`` (user, settings, key prefix)."""

    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.settings = ui.settings

    # ---- compare
    def comparison(self, backup_id: str, collections: list[str], key: str, *,
                   refresh: bool = False) -> StoredComparison | None:
        """The session's comparison for this choice, computed only when needed (None: not asked for yet)."""
        signature = (backup_id, tuple(collections), key)
        held = st.session_state.get(self.ui.k("restore_comparison"))
        if held is not None and held[0] == signature and not refresh:
            cmp: StoredComparison = held[1]
            with open_context(self.settings) as ctx:
                if live_token(ctx.db, list(cmp.collections)) == cmp.live_token:
                    return cmp
            refresh = True  # documents were added or removed since: the old figures would mislead
        if not refresh:
            return None
        self.forget_comparison()
        self.ui.clear_result(SECTION)  # a new look at the data: the last restore's banner is history
        with open_context(self.settings) as ctx:
            cmp = StoredComparison.compute(ctx.db, ctx.store, backup_id, collections, key)
        st.session_state[self.ui.k("restore_comparison")] = (signature, cmp)
        return cmp

    def forget_comparison(self) -> None:
        held = st.session_state.pop(self.ui.k("restore_comparison"), None)
        if held is not None:
            held[1].close()
        st.session_state.pop(self.ui.k("restore_plan"), None)

    # ---- preview, restore, undo
    def preview(self, backup_id: str, options: RestoreOptions, signature: tuple) -> RestoreResult:
        with open_operation(self.settings, "restore_dry_run",
                            details={"backup_id": backup_id, "database": self.settings.db_name,
                                     **options.audit_details()}) as ctx:
            plan = plan_restore(ctx.db, ctx.store, backup_id, options)
        self.ui.clear_result(SECTION)
        st.session_state[self.ui.k("restore_plan")] = (signature, plan)
        return plan

    def plan(self, signature: tuple) -> RestoreResult | None:
        """The dry run shown for exactly this choice (another choice: none)."""
        held = st.session_state.get(self.ui.k("restore_plan"))
        return held[1] if held is not None and held[0] == signature else None

    def restore(self, backup_id: str, options: RestoreOptions,
                progress: Callable[[str, int, int], None] | None = None) -> RestoreResult:
        auth.require_admin(self.ui.user, "Restoring a backup")
        with open_operation(self.settings, "restore",
                            details={"backup_id": backup_id, "database": self.settings.db_name,
                                     **options.audit_details()}) as ctx:
            result = restore_backup(ctx.db, ctx.store, backup_id, options, progress=progress)
        self.forget_comparison()  # live data changed: compare again
        names = ", ".join(options.collections or result.collections)
        self.forget_undo_plan()  # the restore is the latest now: an undo dry run shown before is history
        self._done("success", f"Restored backup {backup_id} into {self.settings.db_name} ({names}) in "
                   f"{result.duration_s:.1f} s. " + self._safety_text(result), result)
        return result

    def undo_target(self) -> tuple[RestoreRecord | None, RestoreRefused | None]:
        """The restore Undo acts on now (``undo.find_latest``), or the core's reason why there is none."""
        try:
            return undo_log.find_latest(self.ui.store, self.settings.db_name), None
        except RestoreRefused as exc:
            return None, exc

    def plan_undo(self, record: RestoreRecord) -> undo_log.UndoResult:
        """The dry run of undoing ``record``: its counts per collection; refused if it is no longer the latest.

        Kept in the session for ``record`` (``undo_plan``) until the undo runs or another restore is the latest;
        the section's last result is history from here on (one result on screen).
        """
        auth.require_admin(self.ui.user, "Undoing a restore")
        st.session_state.pop(self.ui.k("restore_undo_plan"), None)
        st.session_state[self.ui.k("restore_undo_confirm_text")] = ""  # its field is drawn after the click
        self.ui.clear_result(SECTION)
        with open_operation(self.settings, "undo_dry_run", details={"database": self.settings.db_name}) as ctx:
            plan = undo_log.plan_undo(ctx.db, ctx.store, undo_log.UndoOptions(user=self.ui.user.name,
                                                                              expect=record.op))
        st.session_state[self.ui.k("restore_undo_plan")] = (record.op, plan)
        return plan

    def undo_plan(self, record: RestoreRecord) -> tuple[undo_log.UndoResult | None, bool]:
        """(the dry run shown for undoing exactly ``record``, or None; True when a dry run of another restore
        was dropped because that one is no longer the latest)."""
        held = st.session_state.get(self.ui.k("restore_undo_plan"))
        if held is not None and held[0] != record.op:
            self.forget_undo_plan()
            return None, True
        return (held[1] if held is not None else None), False

    def forget_undo_plan(self) -> None:
        """Drop the undo's dry run; its typed confirmation is emptied at the start of the next run."""
        if st.session_state.pop(self.ui.k("restore_undo_plan"), None) is not None:
            st.session_state[self.ui.k("restore_clear_undo_confirm")] = True

    def undo(self, record: RestoreRecord,
             progress: Callable[[str, int, int], None] | None = None) -> undo_log.UndoResult:
        """Undo ``record`` (the latest restore) with ``backup_core.undo``: refused if another restore is the
        latest now; only the collections it touched are put back, from the safety backup it took."""
        auth.require_admin(self.ui.user, "Undoing a restore")
        self.ui.clear_result(SECTION)  # a refusal below must not sit under the previous action's banner
        try:
            with open_operation(self.settings, "undo", details={"database": self.settings.db_name}) as ctx:
                done = undo_log.undo(ctx.db, ctx.store, undo_log.UndoOptions(
                    confirmed=True, user=self.ui.user.name, expect=record.op, progress=progress))
        finally:
            self.forget_undo_plan()  # done or refused: its counts are history either way
        self.forget_comparison()  # live data changed: compare again
        names = ", ".join(done.restore.collections) or "no collection"
        self._done("success", f"Undone: {names} in {self.settings.db_name} are back as they were before backup "
                   f"{record.backup_id} was restored (restored its safety backup {done.restored_backup_id} in "
                   f"{done.result.duration_s:.1f} s). " + self._safety_text(done.result), done.result, where="undo")
        return done

    def _done(self, kind: str, text: str, result: RestoreResult, *, where: str = "restore") -> None:
        self.ui.keep_result(SECTION, kind, text, result, rerun=False)
        st.session_state[self.ui.k("restore_result_at")] = where  # drawn next to the button that made it
        st.session_state[self.ui.k("restore_clear_confirm")] = True  # no accidental second restore

    @staticmethod
    def _safety_text(result: RestoreResult) -> str:
        return (f"Safety backup: **{result.safety_backup_id}**" if result.safety_backup_id
                else "No safety backup was taken, so there is nothing to undo.")

    def result_at(self) -> str:
        """Where the section's result belongs: "restore" (under the restore controls) or "undo"."""
        return st.session_state.get(self.ui.k("restore_result_at"), "restore")

    def clear_confirmation_if_asked(self) -> None:
        """After a restore or undo: reset the confirmation widgets (before they are created in this run)."""
        if st.session_state.pop(self.ui.k("restore_clear_undo_confirm"), False):
            st.session_state[self.ui.k("restore_undo_confirm_text")] = ""
        if st.session_state.pop(self.ui.k("restore_clear_confirm"), False):
            # assigning (not deleting) also resets the value the browser holds for these widgets
            for name, empty in (("restore_confirm_text", ""), ("restore_confirm_check", False),
                                ("restore_allow_other_db", False), ("restore_allow_destructive", False)):
                st.session_state[self.ui.k(name)] = empty

    # ---- history
    def recent_restores(self, limit: int = 10) -> list[RestoreRecord]:
        """The newest restores of this backup root (every session and host), each with its safety backup."""
        return undo_log.recent_restores(self.ui.store, limit=limit, database=self.settings.db_name)
