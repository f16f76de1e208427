"""The login gate: nothing before login, instructions when no user exists, errors for bad passwords."""

from __future__ import annotations

from backup_core import audit
from backup_core.auth import set_password
from backup_core.config import Settings
from tests.pages.conftest import frame_with, run_page, texts


def _settings(page_env):
    return Settings.load().with_user("test-setup")


def test_no_users_shows_how_to_create_one_and_no_data(seeded, make_app):
    at = run_page(make_app(role=None))
    assert not at.exception
    body = texts(at)
    assert "python -m backup_core set-password admin" in body
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


def test_demo_admin_is_created_only_for_the_embedded_demo(make_app, page_env, monkeypatch):
    from backup_core.auth import authenticate, has_users

    monkeypatch.setenv("BACKUP_DEMO_ADMIN_PASSWORD", "demo-password-1")
    at = run_page(make_app(role=None))  # external MONGODB_URI: never create a default admin
    assert not at.exception
    assert not has_users(_settings(page_env))
    monkeypatch.delenv("MONGODB_URI")  # the embedded demo (the login page does not start the server)
    at = run_page(make_app(role=None))
    assert not at.exception
    assert any("created the user **admin**" in i.value for i in at.info)
    assert authenticate(_settings(page_env), "admin", "demo-password-1").is_admin
    assert at.text_input(key="login_user")
