"""The login gate: nothing before login, instructions when no user exists, errors for bad passwords."""

from __future__ import annotations

import json

import pytest

from backup_core import audit, auth
from backup_core.auth import set_password
from backup_core.config import Settings
from backup_core.errors import AuthError
from tests.pages.conftest import frame_with, make_backup, run_page, texts

PW = "correct horse battery"
RESTORE = "pages/2_Restore.py"


def _settings(page_env):
    return Settings.load().with_user("test-setup")


def test_no_users_and_no_way_to_make_one_says_how_with_this_interpreter(seeded, make_app, page_env):
    # the one-time password cannot be stored: a folder where its file goes
    (page_env["root"] / auth.AUTH_DIR / auth.INITIAL_PASSWORD_FILE).mkdir(parents=True)
    at = run_page(make_app(role=None))
    assert not at.exception
    body = texts(at)
    assert "No dashboard user exists yet" in body
    assert [c.value for c in at.code] == [f"{auth.python_command()} -m backup_core set-password admin"]
    assert not auth.python_command().startswith("python")  # the installation's interpreter, e.g. .venv/bin/python
    assert "Equipment" not in body and seeded.name not in body
    assert not at.text_input  # no login form without users
    assert not at.sidebar.button


def test_login_form_before_login_hides_everything(seeded, make_app, page_env):
    set_password(_settings(page_env), "alice", "correct horse battery", "admin")
    at = run_page(make_app(role=None))
    assert not at.exception
    assert at.text_input(key="login_user") and at.text_input(key="login_password")
    body = texts(at)
    assert "Equipment" not in body and seeded.name not in body and "Last backup" not in body
    assert not at.dataframe


def test_pages_are_not_reachable_before_login(seeded, make_app, page_env):
    set_password(_settings(page_env), "alice", "correct horse battery", "admin")
    at = make_app(role=None)
    at.run()
    try:
        at.switch_page("pages/4_Browse_Backups.py")
    except ValueError:
        return  # not even registered: fine
    at.run()
    assert "Browse Backups" not in texts(at)


def test_wrong_password_shows_error(seeded, make_app, page_env):
    set_password(_settings(page_env), "alice", "correct horse battery", "admin")
    at = run_page(make_app(role=None))
    at.text_input(key="login_user").input("alice")
    at.text_input(key="login_password").input("wrong password!")
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert any("invalid user name or password" in e.value for e in at.error)
    assert "auth_user" not in at.session_state
    assert "Equipment" not in texts(at)
    entry = audit.read(page_env["root"], 1)[0]
    assert entry["action"] == "login" and entry["outcome"] == "error"


def test_right_password_logs_in_and_logout_logs_out(seeded, make_app, page_env):
    set_password(_settings(page_env), "alice", "correct horse battery", "viewer")
    at = run_page(make_app(role=None))
    at.text_input(key="login_user").input("alice")
    at.text_input(key="login_password").input("correct horse battery")
    at.button(key="login_submit").click().run()
    assert not at.exception
    assert at.session_state["auth_user"].name == "alice"
    body = texts(at)
    assert "Logged in as **alice** (viewer)" in body
    assert seeded.name in body and frame_with(at, "collection") is not None  # Home
    at.sidebar.button(key="logout").click().run()
    assert not at.exception
    assert "auth_user" not in at.session_state
    assert at.text_input(key="login_user")
    assert "Equipment" not in texts(at)


def test_demo_admin_is_created_only_for_the_embedded_demo(make_app, page_env, monkeypatch, tmp_path):
    from backup_core.auth import authenticate

    monkeypatch.setenv("BACKUP_DEMO_ADMIN_PASSWORD", "demo-password-1")
    at = run_page(make_app(role=None))  # external MONGODB_URI: never an admin with a known password
    assert not at.exception
    assert not any("created the user **admin**" in i.value for i in at.info)
    with pytest.raises(AuthError):
        authenticate(_settings(page_env), "admin", "demo-password-1")
    assert auth.initial_password_path(_settings(page_env)).is_file()  # the one-time password instead

    monkeypatch.setenv("BACKUP_ROOT", str(tmp_path / "fresh-root"))  # a fresh start ...
    monkeypatch.delenv("MONGODB_URI")  # ... of the embedded demo
    from webui import login

    started = []  # the login page starts the server in the background (test_daily_use); not here
    monkeypatch.setattr(login, "_start_embedded", lambda data_dir, db_name: started.append(data_dir))
    at = run_page(make_app(role=None))
    assert not at.exception
    assert any("created the user **admin**" in i.value for i in at.info)
    assert authenticate(_settings(page_env), "admin", "demo-password-1").is_admin
    assert at.text_input(key="login_user")


# ---------------------------------------------------------------- sessions follow the user store

def _log_in(at, name, password=PW):
    at.text_input(key="login_user").input(name)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, at.exception
    return at


def _restore_offered(at) -> bool:
    keys = {b.key for b in at.button}
    return "restore_preview_btn" in keys and "restore_run_btn" in keys


def test_a_demoted_user_can_no_longer_restore_at_the_next_rerun(seeded, make_app, page_env):
    settings = _settings(page_env)
    set_password(settings, "alice", PW, "admin")
    make_backup(seeded, page_env["root"])
    at = _log_in(run_page(make_app(role=None)), "alice")
    at.switch_page(RESTORE)
    at.run()
    assert _restore_offered(at)

    set_password(settings, "alice", PW, role="viewer")  # same password: a pure role change
    at.run()
    assert not at.exception, at.exception
    assert at.session_state["auth_user"].role == "viewer"
    assert not _restore_offered(at)
    assert any("Restoring needs the admin role; alice (viewer) can compare but not restore" in i.value
               for i in at.info)
    assert [t.value for t in at.toast] == ["Your role is now viewer."]

    set_password(settings, "alice", PW, role="admin")  # promoted again
    at.run()
    assert not at.exception, at.exception
    assert _restore_offered(at) and at.session_state["auth_user"].role == "admin"
    at.switch_page("app.py")  # Home: the sidebar says who is logged in, with which role
    at.run()
    assert "Logged in as **alice** (admin)" in texts(at)


def test_a_deleted_user_is_logged_out_with_a_message(seeded, make_app, page_env):
    settings = _settings(page_env)
    set_password(settings, "alice", PW, "admin")
    set_password(settings, "bob", PW, "admin")
    at = _log_in(run_page(make_app(role=None)), "alice")
    assert "Logged in as **alice** (admin)" in texts(at)

    path = auth.users_path(settings)
    data = json.loads(path.read_text())
    del data["users"]["alice"]
    path.write_text(json.dumps(data))
    at.run()
    assert not at.exception, at.exception
    assert "auth_user" not in at.session_state
    assert at.text_input(key="login_user")  # the login page
    assert any("You were logged out: the user alice no longer exists" in w.value for w in at.warning)
    assert "Equipment" not in texts(at) and not at.dataframe
    entry = audit.read(page_env["root"], 1)[0]
    assert (entry["action"], entry["user"], entry["reason"]) == ("logout", "alice", "deleted")
    at.run()  # said once
    assert not any("logged out" in w.value for w in at.warning)


def test_a_new_password_or_a_lockout_ends_the_session(seeded, make_app, page_env):
    settings = _settings(page_env)
    set_password(settings, "alice", PW, "admin")
    at = _log_in(run_page(make_app(role=None)), "alice")
    set_password(settings, "alice", "another password", "admin")  # e.g. from another terminal
    at.run()
    assert "auth_user" not in at.session_state
    assert any("the password of alice was changed" in w.value for w in at.warning)

    at = _log_in(at, "alice", "another password")
    assert at.session_state["auth_user"].name == "alice"
    for _ in range(auth.MAX_FAILURES):  # someone else guesses at the name
        try:
            auth.authenticate(settings, "alice", "a wrong guess")
        except Exception:  # noqa: BLE001
            pass
    at.run()
    assert "auth_user" not in at.session_state
    warning = " ".join(w.value for w in at.warning)
    assert "the user alice is locked" in warning
    assert f"{auth.python_command()} -m backup_core unlock alice" in warning


def test_the_lockout_message_at_login_says_how_to_unlock(seeded, make_app, page_env):
    set_password(_settings(page_env), "alice", PW, "admin")
    at = run_page(make_app(role=None))
    for _ in range(auth.MAX_FAILURES):
        at = _log_in(at, "alice", "wrong password!")
    at = _log_in(at, "alice", PW)
    error = " ".join(e.value for e in at.error)
    assert "account locked after 5 failed logins; try again in 15 minutes" in error
    assert f"ask an admin to run: {auth.python_command()} -m backup_core unlock alice" in error
    assert not auth.python_command().startswith("python")  # the installation's interpreter
    assert "auth_user" not in at.session_state
    auth.unlock(_settings(page_env), "alice")
    at = _log_in(at, "alice", PW)
    assert at.session_state["auth_user"].name == "alice"
