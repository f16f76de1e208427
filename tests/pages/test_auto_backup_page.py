"""The Auto Backup page through Streamlit's AppTest: settings, Run now, the check, roles."""

from __future__ import annotations

import pytest

from backup_core import scheduler
from backup_core.store import LocalStore

from tests.pages.conftest import values as texts

PAGE = "pages/3_Auto_Backup.py"


@pytest.fixture
def auto_env(page_env, db):
    db["Equipment"].insert_many([{"_id": i, "name": f"item {i}"} for i in range(5)])
    return page_env


def test_page_renders_defaults(open_page, auto_env):
    at = open_page()
    assert not at.exception
    assert at.number_input(key="auto_interval").value == pytest.approx(1.0)
    assert at.number_input(key="auto_retention").value == pytest.approx(7.0)
    interval = at.number_input(key="auto_interval")
    assert (interval.min, interval.max) == (pytest.approx(0.1), pytest.approx(168.0))
    assert "No runs yet" in texts(at, "info")


def test_out_of_range_interval_is_refused_and_valid_one_persists(open_page, auto_env, root):
    at = open_page()
    at.number_input(key="auto_interval").set_value(500.0)
    submit = next(b for b in at.button if b.label == "Save")
    submit.click().run()
    assert not at.exception, at.exception
    assert scheduler.load_config(root).interval_hours != 500.0
    assert at.number_input(key="auto_interval").value <= 168.0

    at.number_input(key="auto_interval").set_value(2.5)
    at.number_input(key="auto_retention").set_value(3.0)
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    cfg = scheduler.load_config(root)
    assert (cfg.interval_hours, cfg.retention_days) == (2.5, 3.0)
    assert "Saved" in texts(at, "success")


def test_run_now_then_check_says_not_needed(open_page, auto_env, root):
    at = open_page()
    at.button(key="auto_run_now").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    backups = LocalStore(root).list_backups()
    assert len(backups) == 1
    assert backups[0].backup_id in texts(at, "success")
    history = at.dataframe[-1].value
    assert list(history["result"]) == ["ok"] and list(history["trigger"]) == ["manual"]

    at.button(key="auto_check_now").click().run()
    assert not at.exception, at.exception
    assert "backup not needed" in texts(at, "info")
    assert len(LocalStore(root).list_backups()) == 1


def test_check_backs_up_when_there_is_none(open_page, auto_env, root):
    at = open_page()
    at.button(key="auto_check_now").click().run()
    assert not at.exception, at.exception
    assert len(LocalStore(root).list_backups()) == 1
    assert "created" in texts(at, "success")


def test_clean_up_now(open_page, auto_env, root):
    at = open_page()
    at.button(key="auto_cleanup_now").click().run()
    assert not at.exception, at.exception
    assert "Clean-up deleted 0 backup(s)" in texts(at, "success")


def test_failed_last_run_shows_warning(open_page, auto_env, monkeypatch, root):
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    at = open_page()
    at.button(key="auto_run_now").click().run()
    assert not at.exception, at.exception
    assert "backup failed" in texts(at, "error").lower()
    assert "last backup run" in texts(at, "warning").lower()


def test_viewer_cannot_change(open_page, auto_env, root):
    at = open_page("viewer")
    assert at.button(key="auto_run_now").disabled
    assert at.button(key="auto_check_now").disabled
    assert next(b for b in at.button if b.label == "Save").disabled
    assert "admin role" in texts(at, "error")
