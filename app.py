"""Streamlit entry point: login gate, navigation and the Home status overview.

Run with ``make run`` (embedded demo database) or
``streamlit run app.py`` with MONGODB_URI / MONGODB_DB / BACKUP_ROOT set.

Nothing is shown before a successful login: until then the only registered
page is the login form (so page URLs and the sidebar reveal nothing either).
Every rerun re-checks the logged-in user against the user store
(``common.current_user`` calls ``backup_core.auth.refresh``): a user deleted,
locked out or given a new password since logging in is logged out at once,
with the reason on the login page, and a changed role applies at once.
User accounts are created with ``python -m backup_core set-password admin``.
With no user at all, the first start creates ``admin`` with a one-time
password (printed on the console, kept in a 0600 file; see
``webui/first_start.py``); logging in with it leads to a form that sets a new
password before anything else is shown. In the embedded demo mode only,
setting ``BACKUP_DEMO_ADMIN_PASSWORD`` makes the first start create ``admin``
with that password instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import streamlit as st

from backup_core import audit
from backup_core.context import open_store
from webui import account, common

HERE = Path(__file__).resolve().parent

st.set_page_config(page_title="MongoDB Backup & Restore", page_icon=":material/database:", layout="wide")

# (file, title, icon); a page file that does not exist (yet) is left out of the navigation
PAGE_FILES = [
    ("pages/1_Create_Backup.py", "Create Backup", ":material/backup:"),
    ("pages/2_Restore.py", "Restore", ":material/settings_backup_restore:"),
    ("pages/3_Auto_Backup.py", "Auto Backup", ":material/schedule:"),
    ("pages/4_Browse_Backups.py", "Browse Backups", ":material/folder_open:"),
    ("pages/5_Audit_Log.py", "Audit Log", ":material/receipt_long:"),
]


def _auth_module():
    try:
        from backup_core import auth
    except ImportError:
        return None
    return auth


# ---------------------------------------------------------------- login
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


def _first_login_hint(auth, initial) -> None:
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
    st.code(f"{auth.python_command()} -m backup_core set-password {initial.user}", language="bash",
            wrap_lines=True)


def login_page() -> None:
    st.title("MongoDB Backup & Restore")
    logged_out = st.session_state.pop(common.LOGGED_OUT_KEY, None)
    if logged_out:  # the user store ended the last session: say why, once
        st.warning(logged_out)
    auth = _auth_module()
    if auth is None:
        st.error("The authentication module (backup_core.auth) is missing, so nobody can log in. "
                 "Reinstall or update the application.")
        return
    settings = common.run_core(common.get_settings)  # a broken secrets.toml is an error line, not a traceback
    if settings is None:
        return
    initial = common.run_core(_first_login, settings)
    has_users = common.run_core(auth.has_users, settings)
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
            _first_login_hint(auth, initial)
    if submitted:
        if not name or not password:
            st.error("Enter both a user name and a password.")
            return
        user = common.run_core(auth.authenticate, settings, name.strip(), password)
        if user is not None:
            st.session_state[common.AUTH_KEY] = user
            st.session_state.pop(common.SETTINGS_KEY, None)
            st.session_state.pop("login_password", None)  # keep no password in the session
            st.rerun()


def logout() -> None:
    user = common.current_user()
    if user is not None:
        try:
            audit.record(common.get_settings(), user=user.name, action="logout")
        except Exception:  # noqa: BLE001 - logging out must always work, even if the log cannot be written
            logging.getLogger("webui").warning("cannot record the logout of %s", user.name, exc_info=True)
    common.end_session()


# ---------------------------------------------------------------- scheduler
def _scheduler_disabled() -> bool:
    return not common.get_settings().dashboard_scheduler


@st.cache_resource(show_spinner=False)
def _start_scheduler(root: str, uri: str | None, db_name: str, data_dir: str) -> bool:
    """Start the in-process scheduler once per process and database (raises on failure, so it is retried)."""
    from backup_core import scheduler
    from backup_core.config import Settings

    settings = Settings.load(uri=uri, db=db_name, root=root, data_dir=data_dir).with_user("scheduler")
    scheduler.ensure_scheduler(settings)
    return True


def ensure_scheduler_once() -> None:
    """Host the automatic-backup scheduler in this dashboard process; a failure is a warning, not a crash.

    Set BACKUP_DASHBOARD_SCHEDULER=0 when a separate ``python -m backup_core scheduler`` runs instead.
    """
    if _scheduler_disabled():
        return
    s = common.get_settings()
    try:
        _start_scheduler(str(s.backup_root), s.uri, s.db_name, str(s.data_dir))
    except Exception as exc:  # noqa: BLE001 - the dashboard must run even if the scheduler cannot
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        st.sidebar.warning(f"Automatic backups could not start in this dashboard: {reason}. "
                           "See the Auto Backup page, or run `python -m backup_core scheduler` separately.")


# ---------------------------------------------------------------- home
def _scheduler_status(settings):
    try:
        from backup_core import scheduler
    except ImportError:
        return None
    return scheduler.scheduler_status(settings)


def _parse_dt(value):
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, str) and value:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
    return None


def _failed(result) -> str | None:
    """A scheduler ``last_result`` that says the run failed -> its message, else None."""
    if not result:
        return None
    if isinstance(result, dict):
        outcome = str(result.get("outcome") or result.get("status") or "").lower()
        if result.get("ok") is False or outcome in ("error", "failed", "failure"):
            return str(result.get("error") or result.get("message") or outcome or "failed")
        return None
    text = str(result)
    return text if text.lower().startswith(("error", "fail")) else None


def home_page() -> None:
    import pandas as pd

    settings = common.get_settings()
    store = open_store(settings)
    st.title("MongoDB Backup & Restore")

    info = common.run_core(common.database_overview, settings)
    listing = common.run_core(common.list_backups_cached, store)
    backups, errors = listing if listing is not None else ([], [])
    status = common.run_core(_scheduler_status, settings) or {}
    now = datetime.now(timezone.utc)
    last = backups[0] if backups else None

    # warnings first: what needs attention
    interval = status.get("interval_hours")
    if last is None:
        st.warning("There is no backup yet. Create one on the Create Backup page.")
    elif interval and status.get("enabled", True) and now - last.created > timedelta(hours=2 * float(interval)):
        st.warning(f"The last backup is {common.human_age(last.created)}, more than twice the "
                   f"{interval:g} h backup interval. Check the Auto Backup page.")
    failure = _failed(status.get("last_result"))
    if failure:
        st.warning(f"The last scheduled backup failed: {failure}. See the Audit Log and Auto Backup pages.")
    if errors:
        st.warning(f"{common.plural(len(errors), 'folder')} in the backup root "
                   f"{'is not a readable backup' if len(errors) == 1 else 'are not readable backups'}: "
                   + "; ".join(errors[:3]) + (" …" if len(errors) > 3 else ""))

    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Last backup", common.human_age(last.created) if last else "never",
              help=last.backup_id if last else None)
    next_run = _parse_dt(status.get("next_run"))
    active = status.get("active")
    c2.metric("Next scheduled backup",
              common.human_age(next_run) if (next_run and active) else "not scheduled")
    state = ("disabled" if status.get("enabled") is False else "active" if active
             else "not running" if status else "unknown")
    c3.metric("Scheduler", state,
              help=f"every {interval:g} h" if interval else None)
    storage = common.backup_storage(store, backups)  # the same figures as Browse Backups
    c4.metric("Backup storage", common.human_bytes(storage.on_disk) if storage.on_disk is not None else "?",
              help=common.storage_text(storage, store.url))

    st.markdown(common.where_backups_live(settings, store))
    mirror = common.run_core(common.mirror_status_cached, settings, store) if settings.mirror_root else None
    if mirror is not None and mirror.error:
        st.warning(f"The second copy in `{mirror.mirror}` cannot be read: {mirror.error}")
    elif mirror is not None and mirror.behind:
        st.warning(f"The second copy in `{mirror.mirror}` lacks {common.plural(len(mirror.missing), 'backup')} "
                   f"(the oldest since {common.human_age(mirror.behind_since)}); the scheduler copies what is "
                   "missing after each backup, or run `copy --all-missing --to` by hand.")

    st.subheader("Database")
    if info is not None:
        kind = "embedded demo server" if info.get("embedded") else "external MongoDB"
        st.markdown(f"**{info['database']}** on `{info['uri']}` ({kind})")
        colls = info.get("collections") or {}
        if colls:
            st.dataframe(
                pd.DataFrame([{"collection": n, "documents": c.get("count")} for n, c in colls.items()]),
                hide_index=True, key="home_collections")
        else:
            st.info("The database has no collections.")

    if last is not None:
        st.subheader("Last backup")
        tz, zone = common.local_zone()
        st.markdown(f"`{last.backup_id}` ({last.trigger}, {last.day.capitalize()}) — "
                    f"{common.plural(last.total_documents, 'document')} in "
                    f"{common.plural(len(last.collections), 'collection')}, "
                    f"{common.human_bytes(last.total_bytes)}, created {common.human_age(last.created)} "
                    f"({common.local_time(last.created, tz)} {zone})")

    if backups:
        from webui import charts

        st.subheader("Backups over time")
        tz, zone = common.local_zone()
        shown = backups[:charts.MAX_POINTS]
        size_chart, docs_chart = charts.size_and_documents(shown, tz, zone)
        left, right = st.columns(2)
        with left:
            st.caption("Size of each backup")
            st.altair_chart(size_chart, width="stretch", key="home_chart_size")
        with right:
            st.caption("Documents in each backup")
            st.altair_chart(docs_chart, width="stretch", key="home_chart_documents")
        if len(backups) > len(shown):
            st.caption(f"The newest {len(shown)} of {common.plural(len(backups), 'backup')}.")
        common.storage_section(shown, tz, zone, key="home")


# ---------------------------------------------------------------- main
def app_pages() -> list:
    """Home, every page file that exists (a missing one is left out, so the app keeps working), Change password."""
    pages = [st.Page(home_page, title="Home", icon=":material/home:", default=True, url_path="home")]
    for rel, title, icon in PAGE_FILES:
        if (HERE / rel).exists():
            pages.append(st.Page(rel, title=title, icon=icon))
    pages.append(st.Page(account.change_password_page, title="Change password", icon=":material/key:",
                         url_path="account"))
    return pages


def _sidebar_user(user) -> None:
    with st.sidebar:
        st.markdown(f"Logged in as **{user.name}** ({user.role})")
        if st.button("Log out", key="logout"):
            logout()
            st.rerun()


def main() -> None:
    # current_user() re-checks the session against the user store first (auth.refresh), before
    # navigation: a user deleted or locked since the last click gets the login page and the reason
    user = common.current_user()
    if user is not None and user.must_change_password:
        # logged in with the one-time password: choosing a new one comes before anything else,
        # whatever page URL was asked for
        aliases = [st.Page(account.first_login_page, title="Choose your password", url_path=p.url_path)
                   for p in app_pages() if p.url_path]
        first = st.Page(account.first_login_page, title="Choose your password", icon=":material/key:",
                        default=True)
        page = st.navigation([first, *aliases], position="hidden")
        _sidebar_user(user)
        page.run()
        return
    if user is None:
        # Only the login form exists before login. Every page URL is an alias of it, so a
        # bookmarked link shows the login form (not "page not found"), and after logging
        # in the rerun lands on the page that was asked for (a page's id is its URL path).
        aliases = [st.Page(login_page, title="Log in", url_path=p.url_path) for p in app_pages() if p.url_path]
        login = st.Page(login_page, title="Log in", icon=":material/login:", default=True)
        st.navigation([login, *aliases], position="hidden").run()
        return

    page = st.navigation(app_pages())
    # sidebar widgets after st.navigation: their ids then belong to the resolved page,
    # so the first click after logging in is not lost
    _sidebar_user(user)
    account.show_changed_notice()
    ensure_scheduler_once()
    page.run()


main()
