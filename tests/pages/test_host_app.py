"""The backup UI embedded in a host app (examples/host_app.py and small hosts made here), through AppTest.

The host logs its users in its own way; the backup tab follows the host's
user and role, keeps its widget keys under its prefix, and starts the
scheduler once per process however often the host reruns.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from backup_core import audit
from backup_core.store import LocalStore
from tests.conftest import ROOT
from tests.pages.conftest import TIMEOUT, make_backup, texts, undo_latest

HOST = str(ROOT / "examples" / "host_app.py")


@pytest.fixture
def host(page_env, monkeypatch):
    monkeypatch.setenv("HOST_APP_USERS", "hana:hana-pw:admin,vera:vera-pw:viewer")

    def _open(name: str, password: str) -> AppTest:
        at = AppTest.from_file(HOST, default_timeout=TIMEOUT).run()
        assert not at.exception, at.exception
        at.text_input(key="host_user").input(name)
        at.text_input(key="host_password").input(password)
        next(b for b in at.button if b.label == "Sign in").click().run()
        assert not at.exception, at.exception
        assert at.session_state["user"] == name
        return at
    return _open


def _section(at: AppTest, name: str) -> AppTest:
    at.radio(key="backup-section").set_value(name).run()
    assert not at.exception, at.exception
    return at


def test_admin_backs_up_restores_and_undoes_in_the_host_tab(host, seeded, root, db_name):
    at = host("hana", "hana-pw")
    assert [t.label for t in at.tabs] == ["Equipment", "Reports", "Backup & Restore"]
    assert not any(t.value == "MongoDB Backup & Restore" for t in at.title)  # no page of its own
    # back up, as the host's user
    at.button(key="backup-create_submit").click().run()
    assert not at.exception, at.exception
    (info,) = LocalStore(root).list_backups()
    assert info.user == "hana" and info.backup_id in texts(at)
    assert audit.read(root, 1, audit.AuditFilter(action="backup"))[0]["user"] == "hana"
    # change live data, restore, undo
    seeded["Equipment"].delete_many({"name": {"$in": ["Pump 1", "Pump 2"]}})
    _section(at, "Restore")
    at.text_input(key="backup-restore_confirm_text").input(db_name).run()
    at.button(key="backup-restore_run_btn").click().run()
    assert not at.exception, at.exception
    assert seeded["Equipment"].count_documents({}) == 60
    assert "Safety backup" in texts(at)
    undo_latest(at, db_name, prefix="backup-")
    assert not at.exception, at.exception
    assert seeded["Equipment"].count_documents({}) == 58  # back to before the restore
    assert "Undone" in texts(at)
    restores = [e for e in audit.read(root, 20, audit.AuditFilter(action="restore")) if e["outcome"] == "ok"]
    assert {e["user"] for e in restores} == {"hana"}


def test_a_host_viewer_sees_no_control_that_changes_data(host, seeded, root):
    make_backup(seeded, root)
    at = host("vera", "vera-pw")
    assert "needs the admin role" in texts(at)  # Create Backup: said, no form
    assert not [b for b in at.button if (b.key or "").startswith("backup-create")]
    _section(at, "Restore")
    keys = {b.key for b in at.button}
    assert "backup-restore_compare_btn" in keys  # looking is allowed
    assert not keys & {"backup-restore_run_btn", "backup-restore_preview_btn", "backup-restore_undo_btn",
                       "backup-restore_import_btn"}
    assert not at.file_uploader
    _section(at, "Browse Backups")
    assert not [b for b in at.button if b.key == "backup-browse_delete"]
    _section(at, "Auto Backup")
    assert not {b.key for b in at.button} & {"backup-auto_run_now", "backup-auto_check_now", "backup-auto_cleanup_now"}
    assert len(LocalStore(root).list_backups()) == 1


def _two_hosts_app():
    import streamlit as st

    from webui import backup_restore_ui

    st.radio("the host's own radio", ["a", "b"], key="restore_mode")  # the dashboard's plain key
    st.text_input("the host's own field", key="section")
    left, right = st.tabs(["first", "second"])
    with left:
        backup_restore_ui(user="ann", role="admin", key="backup")
    with right:
        backup_restore_ui(user="ann", role="viewer", key="other")


def test_keys_are_namespaced_so_the_host_and_two_copies_coexist(page_env, seeded, root):
    make_backup(seeded, root)
    at = AppTest.from_function(_two_hosts_app, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert at.radio(key="restore_mode").value == "a" and at.radio(key="backup-section") and at.radio(key="other-section")
    at.radio(key="backup-section").set_value("Restore").run()
    at.radio(key="other-section").set_value("Restore").run()
    assert not at.exception, at.exception
    assert at.radio(key="restore_mode").value == "a"
    assert at.radio(key="backup-restore_mode").value == "replace"


def _bad_host_app():
    from webui import backup_restore_ui

    backup_restore_ui(user="ann", role="superuser")
    backup_restore_ui(user="", role="admin")


def test_wrong_arguments_are_one_error_line_each_and_nothing_else(page_env):
    at = AppTest.from_function(_bad_host_app, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert [e.value.split(":")[0] for e in at.error] == ["Unknown role 'superuser' for the backup section",
                                                         "The backup section needs the name of the logged-in user (user=...); nothing is shown."]
    assert not at.radio and not at.button


def test_start_auto_backup_starts_the_scheduler_once_per_process(host, seeded, monkeypatch):
    from backup_core import scheduler
    from webui import embed

    calls = []

    class Started:
        running = True

    def counting(settings):
        calls.append(settings.db_name)
        return Started()

    monkeypatch.setenv("BACKUP_DASHBOARD_SCHEDULER", "1")
    monkeypatch.setattr(scheduler, "ensure_scheduler", counting)
    embed._start_scheduler.clear()
    try:
        first = host("hana", "hana-pw")
        for _ in range(3):
            first.run()  # the host reruns on every click
        host("vera", "vera-pw").run()  # another session of the same process
        assert not first.exception, first.exception
        assert len(calls) == 1
    finally:
        embed._start_scheduler.clear()
