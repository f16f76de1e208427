"""webui.common: formatting helpers and the error display every page uses."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from streamlit.testing.v1 import AppTest

from webui import common


def test_human_bytes():
    assert common.human_bytes(0) == "0 B"
    assert common.human_bytes(1023) == "1023 B"
    assert common.human_bytes(1536) == "1.5 KB"
    assert common.human_bytes(5 * 1024 ** 3) == "5.0 GB"
    assert common.human_bytes(None) == "–"


def test_human_age():
    now = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
    assert common.human_age(now - timedelta(seconds=10), now) == "just now"
    assert common.human_age(now - timedelta(minutes=5), now) == "5 min ago"
    assert common.human_age(now - timedelta(hours=3), now) == "3 h ago"
    assert common.human_age(now - timedelta(days=3), now) == "3 days ago"
    assert common.human_age(now + timedelta(minutes=10), now) == "in 10 min"
    assert common.human_age("2026-11-24T09:00:00.000Z", now) == "3 h ago"
    assert common.human_age(None, now) == "never"


def _errors_app():
    from backup_core.errors import BackupNotFound
    from webui import common

    common.run_core(lambda: (_ for _ in ()).throw(BackupNotFound("no backup with id X", hint="run list")))
    common.run_core(lambda: 1 / 0)
    common.run_core(lambda: None)


def test_show_error_is_one_line_without_traceback():
    at = AppTest.from_function(_errors_app, default_timeout=30).run()
    assert not at.exception
    assert [e.value for e in at.error][0] == "no backup with id X. Run list"
    assert at.error[1].value.startswith("Unexpected error: ZeroDivisionError: division by zero")
    assert "Traceback" not in " ".join(e.value for e in at.error)
    assert len(at.error) == 2


def _admin_gate_app():
    import streamlit as st

    from backup_core.auth import User
    from backup_core.config import Settings
    from webui.ui import Ui

    for role in ("viewer", "admin"):
        st.write("allowed" if Ui(User("vic", role), Settings.load()).allowed("Restoring") else "refused")


def test_an_action_asks_the_role_where_it_runs():
    at = AppTest.from_function(_admin_gate_app, default_timeout=30).run()
    assert [m.value for m in at.markdown] == ["refused", "allowed"]
    assert at.error[0].value.startswith("Restoring needs the admin role; vic (viewer) can only look")
    assert len(at.error) == 1


def test_keys_are_namespaced_by_the_prefix():
    from backup_core.auth import User
    from backup_core.config import Settings
    from webui.ui import Ui

    settings = Settings(uri=None, db_name="d", backup_root="/tmp/x", data_dir="/tmp/d", user="someone")
    assert Ui(User("ann", "admin"), settings).k("restore_run_btn") == "restore_run_btn"
    host = Ui(User("ann", "admin"), settings, prefix="backup")
    assert host.k("restore_run_btn") == "backup-restore_run_btn"
    assert host.settings.user == "ann"  # every audit entry names the user the UI is drawn for
