"""First start and own passwords: the one-time admin password, the forced change, the Change password page."""

from __future__ import annotations

import re
import stat
import subprocess
import sys

import pytest

from backup_core import audit, auth
from backup_core.auth import set_password
from backup_core.config import Settings
from tests.conftest import ROOT
from tests.pages.conftest import frame_with, run_page, texts

PW = "correct horse battery"


def _settings():
    return Settings.load().with_user("test-setup")


def _log_in(at, name, password):
    at.text_input(key="login_user").input(name)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click().run()
    assert not at.exception, at.exception
    return at


def _change(at, new, repeat=None, current=None):
    if current is not None:
        at.text_input(key="account_current").input(current)
    at.text_input(key="account_new").input(new)
    at.text_input(key="account_repeat").input(new if repeat is None else repeat)
    at.button(key="account_submit").click().run()
    assert not at.exception, at.exception
    return at


def test_first_start_creates_a_one_time_admin_and_says_how_to_log_in(seeded, make_app, page_env, capfd):
    at = run_page(make_app(role=None))
    assert not at.exception
    path = auth.initial_password_path(_settings())
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().strip()
    assert len(password) >= 16

    # the console gets the password and the file, once
    out = capfd.readouterr().out
    assert out.count("First start") == 1 and f"password:  {password}" in out and str(path) in out
    at.run()
    assert "First start" not in capfd.readouterr().out

    # the login page: the form, where the password is, the commands with this installation's interpreter
    assert at.text_input(key="login_user") and at.text_input(key="login_password")
    hint = " ".join(i.value for i in at.info)
    assert "First start" in hint and "**admin**" in hint
    assert password not in texts(at)  # never shown in the browser
    codes = [c.value for c in at.code]
    assert f"cat {path}" in codes
    assert f"{auth.python_command()} -m backup_core set-password admin" in codes
    assert "Equipment" not in texts(at) and seeded.name not in texts(at)

    entry = audit.read(page_env["root"], 1, audit.AuditFilter(action="set-password"))[0]
    assert entry["target"] == "admin" and entry["initial"] is True and entry["outcome"] == "ok"
    assert password not in audit.audit_path(page_env["root"]).read_text()


def test_make_run_prints_the_one_time_password_before_streamlit_starts(page_env, tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if k != "MONGODB_URI"}
    proc = subprocess.run([sys.executable, "-m", "webui.first_start"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    path = auth.initial_password_path(_settings())
    password = path.read_text().strip()
    assert re.search(rf"password:\s+{re.escape(password)}$", proc.stdout, re.M)
    assert f"cat {path}" in proc.stdout
    again = subprocess.run([sys.executable, "-m", "webui.first_start"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert password in again.stdout, "still pending: every start says how to log in"
    assert path.read_text().strip() == password, "the same password, not a new one"


def test_one_time_login_must_choose_a_new_password_first(seeded, make_app, page_env):
    at = run_page(make_app(role=None))
    path = auth.initial_password_path(_settings())
    one_time = path.read_text().strip()

    at = _log_in(at, "admin", one_time)
    assert at.session_state["auth_user"].must_change_password
    assert [t.value for t in at.title] == ["Choose your password"]
    assert seeded.name not in texts(at) and not at.dataframe  # nothing else before the new password
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/4_Browse_Backups.py")  # no other page is even registered

    at = _change(at, "a-new-password-1", repeat="a-new-password-2")
    assert any("differ" in e.value for e in at.error)
    at = _change(at, "short")
    assert any("too short" in e.value for e in at.error)
    at = _change(at, one_time)
    assert any("different from the current one" in e.value for e in at.error)
    at = _change(at, "my own password 1")
    user = at.session_state["auth_user"]
    assert user.name == "admin" and not user.must_change_password  # still logged in
    assert seeded.name in texts(at) and frame_with(at, "collection") is not None  # Home
    assert [t.value for t in at.toast] == ["Your password was set; the one-time password no longer works."]
    assert not path.exists()
    assert auth.ensure_initial_admin(_settings()) is None

    at.run()  # the session survives its own password change
    assert at.session_state["auth_user"].name == "admin"
    entry = audit.read(page_env["root"], 1, audit.AuditFilter(action="change-password"))[0]
    assert entry["user"] == "admin" and entry["initial"] is True and entry["outcome"] == "ok"

    at.sidebar.button(key="logout").click().run()
    at = _log_in(at, "admin", one_time)
    assert "auth_user" not in at.session_state  # the one-time password is gone
    at = _log_in(at, "admin", "my own password 1")
    assert at.session_state["auth_user"].name == "admin"


def test_set_password_from_the_terminal_ends_the_one_time_password(seeded, make_app, page_env):
    run_page(make_app(role=None))
    path = auth.initial_password_path(_settings())
    assert path.is_file()
    set_password(_settings(), "admin", PW, "admin")
    assert not path.exists()
    at = _log_in(run_page(make_app(role=None)), "admin", PW)
    assert not at.session_state["auth_user"].must_change_password
    assert [t.value for t in at.title] == ["MongoDB Backup & Restore"]  # straight to Home


def test_change_password_page_for_any_user(seeded, make_app, page_env):
    set_password(_settings(), "vic", PW, "viewer")
    at = _log_in(run_page(make_app(role=None)), "vic", PW)
    assert any(i.get("url_pathname") == "account" for i in at._registered_pages.values())  # in the navigation
    at = _go_to(at, "account")
    assert [t.value for t in at.title] == ["Change password"]

    at = _change(at, "vic's new password", current="not my password")
    assert any("current password is wrong" in e.value for e in at.error)
    at = _change(at, "vic's new password", current=PW)
    assert any("password was changed" in s.value for s in at.success)
    assert at.session_state["auth_user"].name == "vic"  # this session stays open
    at.run()
    assert at.session_state["auth_user"].name == "vic"
    assert auth.authenticate(_settings(), "vic", "vic's new password").role == "viewer"
    entry = audit.read(page_env["root"], 1, audit.AuditFilter(action="change-password"))[0]
    assert entry["user"] == "vic" and entry["outcome"] == "ok"


def _go_to(at, url_path: str):
    """Open the page at ``url_path``, as a browser would (AppTest.switch_page only takes page files)."""
    from streamlit.util import calc_hash

    at._page_hash = calc_hash(url_path)  # st.Page's hash of its url_path
    at.run()
    assert not at.exception, at.exception
    return at


def test_an_s3_root_login_hint_shows_no_command_that_cannot_work(make_app, page_env, s3_root, monkeypatch,
                                                                  capfd):
    monkeypatch.setenv("BACKUP_ROOT", s3_root)
    at = run_page(make_app(role=None))
    assert not at.exception, at.exception
    out = capfd.readouterr().out
    password = re.search(r"password:\s+(\S+)$", out, re.M).group(1)  # shown once, on the console
    hint = " ".join(i.value for i in at.info)
    assert "First start" in hint and "stored nowhere" in hint
    codes = [c.value for c in at.code]
    assert not [c for c in codes if c.startswith("cat ") or "s3://" in c]  # nothing to read it from
    assert f"{auth.python_command()} -m backup_core set-password admin" in codes
    assert password not in texts(at)
    at.run()
    assert password not in capfd.readouterr().out  # never again
