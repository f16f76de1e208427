"""The dashboard's login page, its first-start hint, and logging out.

While the login page shows, the embedded demo server (no ``MONGODB_URI``)
is started in the background, once per process: on a fresh machine starting
and seeding it takes seconds that the admin would otherwise wait through
after logging in. A failure there is logged only; the first page that needs
the database reports it as usual.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import streamlit as st

from backup_core import audit, auth
from webui import session
from webui.common import run_core

log = logging.getLogger("webui")


def _start_embedded(data_dir: str, db_name: str) -> None:
    from backup_core import embedded

    try:
        embedded.ensure_server(Path(data_dir), db_name=db_name)
    except Exception:  # noqa: BLE001 - only a head start: the page that needs the database says what failed
        log.warning("the embedded server could not be started in the background", exc_info=True)


@st.cache_resource(show_spinner=False)
def _warm_up_embedded(data_dir: str, db_name: str) -> threading.Thread:
    thread = threading.Thread(target=_start_embedded, args=(data_dir, db_name), name="embedded-warm-up",
                              daemon=True)
    thread.start()
    return thread


def warm_up(settings) -> threading.Thread | None:
    """Start the embedded server in the background (once per process); None with an external MongoDB."""
    if not settings.embedded:
        return None
    return _warm_up_embedded(str(Path(settings.data_dir).absolute()), settings.db_name)


def _first_login(settings):
    """The demo admin or the one-time admin password (webui/first_start.py); the pending one or None."""
    from webui import first_start

    demo, initial = first_start.prepare(settings)
    if demo:
        st.info("Demo mode: created the user **admin** with the password from BACKUP_DEMO_ADMIN_PASSWORD.")
    if initial is not None and initial.created:
        # started without `make run` (which prints it before Streamlit starts): the console gets it now, once
        print(initial.console_text(), flush=True)
    return initial


def _first_login_hint(initial) -> None:
    if initial.read_command:
        st.info(f"**First start.** Log in as **{initial.user}** with the one-time password printed in the console "
                "that started the dashboard (`make run`). It is also in a file readable only by the account that "
                "runs the dashboard; show it in a terminal in the application folder:")
        st.code(initial.read_command, language="bash", wrap_lines=True)
    else:  # an object store root: only its hash is stored, the password was shown once on the console
        st.info(f"**First start.** Log in as **{initial.user}** with the one-time password printed in the console "
                "that started the dashboard (`make run`). It was shown only there and is stored nowhere (the "
                "backup root keeps only its hash).")
    st.markdown("You then choose your own password. Or set it yourself now, in a terminal in the application "
                "folder:")
    st.code(f"{auth.python_command()} -m backup_core set-password {initial.user}", language="bash", wrap_lines=True)


def login_page() -> None:
    st.title("MongoDB Backup & Restore")
    logged_out = st.session_state.pop(session.LOGGED_OUT_KEY, None)
    if logged_out:  # the user store ended the last session: say why, once
        st.warning(logged_out)
    settings = run_core(session.get_settings)  # a broken secrets.toml is an error line, not a traceback
    if settings is None:
        return
    warm_up(settings)
    initial = run_core(_first_login, settings)
    has_users = run_core(auth.has_users, settings)
    if has_users is None:
        return
    if not has_users:  # only when the one-time password could not be made (the error is shown above)
        st.warning("No dashboard user exists yet, so nobody can log in.")
        st.markdown("Create the first administrator in a terminal, in the application folder "
                    "(it asks for the password and stores only its hash), then reload this page:")
        st.code(f"{auth.python_command()} -m backup_core set-password admin", language="bash")
        return
    st.caption("Log in to see and manage the backups.")
    left, right = st.columns([2, 3], gap="large")
    with left, st.form("login_form"):
        name = st.text_input("User", key="login_user")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", key="login_submit", type="primary")
    if initial is not None:
        with right:  # beside the form: what to type into it
            _first_login_hint(initial)
    if not submitted:
        return
    if not name or not password:
        st.error("Enter both a user name and a password.")
        return
    user = run_core(auth.authenticate, settings, name.strip(), password)
    if user is not None:
        st.session_state[session.AUTH_KEY] = user
        st.session_state.pop(session.SETTINGS_KEY, None)
        st.session_state.pop("login_password", None)  # keep no password in the session
        st.rerun()


def logout() -> None:
    user = session.current_user()
    if user is not None:
        try:
            audit.record(session.get_settings(), user=user.name, action="logout")
        except Exception:  # noqa: BLE001 - logging out must always work, even if the log cannot be written
            log.warning("cannot record the logout of %s", user.name, exc_info=True)
    session.end_session()
