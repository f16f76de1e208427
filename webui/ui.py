"""What every section of the backup UI is drawn for: who looks (user and role), the settings, a key prefix.

The product's dashboard and a host app (``webui.backup_restore_ui``) draw the
same sections (``webui.sections``); only where the ``Ui`` comes from differs:
the dashboard's login (``webui.session.page_ui``) or the host's own login.

- **Keys**: every widget key and session-state entry of a section goes
  through :meth:`Ui.k`, so the sections coexist with the host's widgets (and
  with a second embedded copy under another prefix). The dashboard's prefix
  is empty: its keys are the plain names.
- **Roles**: a viewer is shown no control that changes data, and every
  action that changes data asks :meth:`Ui.allowed` right where it runs, so a
  click that reaches the server anyway (a forged message, a disabled button)
  is refused too (``backup_core.auth.require_admin``).
- **One result on screen**: an action's outcome is kept in one slot per
  section (:meth:`Ui.keep_result`) and shown after the rerun; the next
  action of that section replaces it, so no stale banner stays behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import streamlit as st

from backup_core import auth
from backup_core.config import Settings
from backup_core.context import open_store
from backup_core.errors import AuthError

RESULT_KEY = "_result"


@dataclass
class Result:
    """An action's outcome as shown: ``kind`` is an ``st`` call (success, info, warning, error)."""

    kind: str
    text: str
    data: Any = field(default=None, repr=False)  # e.g. counts a section draws under the message


@dataclass
class Ui:
    user: auth.User
    settings: Settings
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.settings.user != self.user.name:
            self.settings = self.settings.with_user(self.user.name)  # every audit entry names this user

    def k(self, name: str) -> str:
        """The session-state key of ``name`` in this UI (widgets and state alike)."""
        return f"{self.prefix}-{name}" if self.prefix else name

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    @cached_property
    def store(self):
        return open_store(self.settings)

    def allowed(self, action: str) -> bool:
        """True for an admin; for anyone else one ``st.error`` and False. Call it where the action runs."""
        try:
            auth.require_admin(self.user, action)
        except AuthError as exc:
            st.error(f"{exc}; {self.user.name} ({self.user.role}) can only look. Ask an admin, or log in as one.")
            return False
        return True

    # ---- the section's one result
    def keep_result(self, section: str, kind: str, text: str, data: Any = None, *, rerun: bool = True) -> None:
        """Replace the section's result; ``rerun`` so the page then shows the new state under it."""
        st.session_state[self.k(f"{section}{RESULT_KEY}")] = Result(kind, text, data)
        if rerun:
            st.rerun()

    def result(self, section: str) -> Result | None:
        return st.session_state.get(self.k(f"{section}{RESULT_KEY}"))

    def clear_result(self, section: str) -> None:
        st.session_state.pop(self.k(f"{section}{RESULT_KEY}"), None)

    def show_result(self, section: str, *, once: bool = False) -> Result | None:
        """Show the section's result (``once``: and forget it); returns it for sections that draw more."""
        res = self.result(section)
        if res is not None:
            getattr(st, res.kind)(res.text)
            if once:
                self.clear_result(section)
        return res
