"""The product dashboard's own login session: who is logged in, re-checked on every rerun, and its settings.

A host app that embeds the backup UI (``webui.backup_restore_ui``) brings its
own login and does not use this module. The dashboard's pages call
:func:`page_ui`: the logged-in user as a ``Ui`` for the sections, or a
"please log in" and a stop.
"""

from __future__ import annotations

import dataclasses
import logging

import streamlit as st

from backup_core import audit, auth, config
from backup_core.config import Settings
from webui.ui import Ui

AUTH_KEY = "auth_user"
SETTINGS_KEY = "_webui_settings"
# why the user store ended the session; the login page shows it once
LOGGED_OUT_KEY = "_logged_out_message"
# which secrets.toml the session's settings hold (path, mtime, size, inode)
SECRETS_SIG_KEY = "_webui_secrets_signature"


def current_user():
    """The logged-in ``backup_core.auth.User`` or None, re-checked against the user store.

    Every call follows the user store (``auth.refresh``: a few ``stat`` calls,
    no password hashing): a user deleted, locked out or given a new password
    since logging in is logged out here, with the reason kept for the login
    page, and a changed role applies at once.
    """
    user = st.session_state.get(AUTH_KEY)
    if user is None or getattr(user, "fingerprint", None) is None:
        return user  # not from a login: auth.refresh leaves it alone, so skip loading settings
    return _follow_user_store(user)


def end_session(message: str | None = None) -> None:
    """Forget the logged-in user (and the settings made for it); ``message`` goes to the login page."""
    for key in (AUTH_KEY, SETTINGS_KEY, SECRETS_SIG_KEY):
        st.session_state.pop(key, None)
    if message:
        st.session_state[LOGGED_OUT_KEY] = message


def _follow_user_store(user):
    try:
        check = auth.refresh(_settings_with_current_secrets(), user)
    except Exception as exc:  # noqa: BLE001 - fail closed: a session that cannot be checked ends
        logging.getLogger("webui").warning("cannot check the session of %s", user.name, exc_info=True)
        settings = st.session_state.get(SETTINGS_KEY)
        try:
            if settings is not None:
                audit.record(settings, user=user.name, action="logout", reason="configuration",
                             error=str(exc))
        except Exception:  # noqa: BLE001
            pass
        end_session(f"You were logged out: your session could not be checked ({exc}).")
        return None
    if check.ended:  # auth.refresh has audited it
        end_session(check.message)
        return None
    if check.user != user:  # a new role
        st.session_state[AUTH_KEY] = check.user
        st.toast(check.message)
    return check.user


def _settings_with_current_secrets() -> Settings:
    """The session's settings, with secrets.toml read again when the file changed (users may leave it).

    Only the secrets are replaced: the database and backup root of a running
    session stay as they were.
    """
    settings = st.session_state.get(SETTINGS_KEY)
    if settings is None:
        settings = Settings.load()
        st.session_state[SETTINGS_KEY] = settings
    path = config.secrets_path()
    try:
        stat = path.stat()
        signature = (str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino)
    except OSError:
        signature = (str(path), None)
    if st.session_state.get(SECRETS_SIG_KEY) != signature:
        settings = dataclasses.replace(settings, secrets=config.load_secrets(path))
        st.session_state[SETTINGS_KEY] = settings
        st.session_state[SECRETS_SIG_KEY] = signature
    return settings


def get_settings() -> Settings:
    """``Settings.load()`` once per session, with ``user`` set to the logged-in user's name."""
    settings = st.session_state.get(SETTINGS_KEY)
    if settings is None:
        settings = Settings.load()
        st.session_state[SETTINGS_KEY] = settings
    user = current_user()
    name = getattr(user, "name", None)
    if name and settings.user != name:
        settings = settings.with_user(name)
        st.session_state[SETTINGS_KEY] = settings
    return settings


def page_ui() -> Ui:
    """The logged-in user as a ``Ui`` for the sections; otherwise a warning and the page stops."""
    user = current_user()
    if user is None:
        st.warning("Please log in on the home page first.")
        st.stop()
    return Ui(user, get_settings())
