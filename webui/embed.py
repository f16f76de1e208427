"""The backup UI inside a host Streamlit app: ``backup_restore_ui`` and ``start_auto_backup``.

::

    import streamlit as st
    from webui import backup_restore_ui, start_auto_backup

    start_auto_backup()                      # once per process, whatever the host reruns
    with tab:                                # any container the host gives it
        backup_restore_ui(user=st.session_state["user"], role=st.session_state["role"], key="backup")

The host keeps its own login: ``user`` and ``role`` are whatever it decided,
and ``role`` decides what is shown (``"admin"``: everything; ``"viewer"``:
look, compare, verify, download, no control that changes data) and what is
done (every action checks the role again where it runs, see ``webui.ui``).
Every audit entry names ``user``. Widget keys start with ``key``, so the
sections coexist with the host's widgets. Nothing here sets the page
configuration or navigates.
"""

from __future__ import annotations

import logging

import streamlit as st

from backup_core.auth import ROLES, User
from backup_core.config import Settings
from webui.sections import SECTIONS
from webui.ui import Ui

log = logging.getLogger("webui")


def backup_restore_ui(*, user: str, role: str, key: str = "backup", settings: Settings | None = None) -> None:
    """Draw the Create / Restore / Auto Backup / Browse / Audit sections for ``user`` with ``role``.

    ``settings``: which database and backup root (default: ``Settings.load()``,
    the same environment and secrets.toml as the CLI). Wrong arguments are
    one ``st.error`` line and nothing else is drawn.
    """
    if not isinstance(user, str) or not user.strip():
        st.error("The backup section needs the name of the logged-in user (user=...); nothing is shown.")
        return
    if role not in ROLES:
        st.error(f"Unknown role {role!r} for the backup section: use one of {', '.join(ROLES)}; nothing is shown.")
        return
    if not isinstance(key, str) or not key:
        st.error("The backup section needs a non-empty key=... for its widgets; nothing is shown.")
        return
    if settings is None:
        settings = _settings(key)
        if settings is None:
            return
    ui = Ui(User(user.strip(), role), settings, prefix=key)
    chosen = st.radio("Backup section", list(SECTIONS), horizontal=True, key=ui.k("section"),
                      label_visibility="collapsed")
    SECTIONS[chosen or next(iter(SECTIONS))](ui)


def _settings(key: str) -> Settings | None:
    """``Settings.load()`` once per session and key; a broken configuration is an error line."""
    name = f"{key}-_settings"
    if name not in st.session_state:
        try:
            st.session_state[name] = Settings.load()
        except Exception as exc:  # noqa: BLE001 - a broken secrets.toml: one line, not a traceback
            from webui.common import show_error

            show_error(exc)
            return None
    return st.session_state[name]


@st.cache_resource(show_spinner=False)
def _start_scheduler(root: str, uri: str | None, db_name: str, data_dir: str) -> bool:
    """Start the scheduler once per process and database (raises on failure, so a later call retries)."""
    from backup_core import scheduler

    settings = Settings.load(uri=uri, db=db_name, root=root, data_dir=data_dir).with_user("scheduler")
    return scheduler.ensure_scheduler(settings).running


def start_auto_backup(settings: Settings | None = None) -> bool:
    """Run the automatic-backup scheduler in this process, once, whatever the host reruns.

    Safe on every rerun and from every session: ``st.cache_resource`` runs
    the start once per process and database, and ``scheduler.ensure_scheduler``
    keeps one service per process anyway. Schedulers of other processes and
    hosts compete for one lease, so one backs up and the others stand by.
    ``BACKUP_DASHBOARD_SCHEDULER=0`` (a separate ``python -m backup_core
    scheduler`` runs) or ``BACKUP_SCHEDULER=off`` start nothing. Returns
    whether a scheduler runs here; a failure is one ``st.warning``, never a crash.
    """
    try:
        s = settings or Settings.load()
        if not (s.dashboard_scheduler and s.scheduler_enabled):
            return False
        return _start_scheduler(str(s.backup_root), s.uri, s.db_name, str(s.data_dir))
    except Exception as exc:  # noqa: BLE001 - the host app must run even if the scheduler cannot
        log.warning("automatic backups could not start", exc_info=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        st.warning(f"Automatic backups could not start in this app: {reason}. "
                   "See the Auto Backup section, or run `python -m backup_core scheduler` separately.")
        return False
