"""The Auto Backup page through Streamlit's AppTest: settings, Run now, the check, notifications, roles."""

from __future__ import annotations

import pytest

from backup_core import scheduler
from backup_core.config import Settings
from backup_core.store import LocalStore, open_store

from tests.pages.conftest import forged_click, frame_with
from tests.pages.conftest import values as texts
from tests.test_notify import Receiver

PAGE = "pages/3_Auto_Backup.py"


@pytest.fixture
def auto_env(page_env, db):
    db["Equipment"].insert_many([{"_id": i, "name": f"item {i}"} for i in range(5)])
    return page_env


@pytest.fixture
def settings_of(page_env):
    return Settings(uri=page_env["uri"], db_name=page_env["db"], backup_root=page_env["root"])


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_page_renders_defaults(open_page, auto_env):
    at = open_page()
    assert not at.exception
    assert at.number_input(key="auto_interval").value == pytest.approx(1.0)
    assert at.number_input(key="auto_keep_last").value is None  # not used
    assert at.number_input(key="auto_safety_days").value == pytest.approx(7.0)
    assert "keep everything younger than 7d" in texts(at, "caption")
    assert "No runs yet" in texts(at, "info")


@pytest.mark.parametrize("bad", [0.0, 1000.0, -5.0, 0.05])
def test_the_interval_field_takes_only_0_1_to_168_hours(open_page, auto_env, settings_of, bad):
    at = open_page()
    field = at.number_input(key="auto_interval")
    assert (field.min, field.max, field.step) == (0.1, 168.0, 0.1)  # what the scheduler allows, in its steps
    field.set_value(bad)
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, at.exception
    assert 0.1 <= scheduler.load_config(settings_of).interval_hours <= 168  # never saved out of range


@pytest.mark.parametrize("hours,mb,message", [
    (0.05, 0, "between 0.1 and 168 hours"), (200, 0, "between 0.1 and 168 hours"), (None, 0, "got nothing"),
    (float("nan"), 0, "between 0.1 and 168 hours"), (1, -1, "0 (no limit) or more MB"),
    (1, float("nan"), "0 (no limit) or more MB")])
def test_the_schedule_as_typed_is_checked_in_the_core(hours, mb, message):
    from backup_core.errors import UsageError

    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scheduler.schedule_from_form(scheduler.ScheduleConfig(), interval_hours=hours, max_root_mb=mb, enabled=True)
    ok = scheduler.schedule_from_form(scheduler.ScheduleConfig(policy={"keep_last": 3}), interval_hours=0.25,
                                      max_root_mb=1.5, enabled=False)
    assert (ok.interval_hours, ok.max_root_bytes, ok.enabled, ok.policy) == (0.25, 1572864, False, {"keep_last": 3})


def test_saved_interval_shows_at_once_and_keeps_the_policy(open_page, auto_env, settings_of):
    from backup_core.retention import RetentionPolicy

    scheduler.save_retention_policy(settings_of, RetentionPolicy(keep_last=4, keep_daily=7), user="t")
    drills = scheduler.load_config(settings_of)
    drills.drill_every_days = 2.0
    scheduler.save_config(settings_of, drills)
    at = open_page()
    at.number_input(key="auto_interval").set_value(6.0)
    next(b for b in at.button if b.label == "Save").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert "Saved: every 6 h" in texts(at, "success")
    assert next(m for m in at.metric if m.label == "Every").value == "6 h"
    assert at.number_input(key="auto_interval").value == pytest.approx(6.0)
    cfg = scheduler.load_config(settings_of)
    assert cfg.interval_hours == 6.0
    assert cfg.retention_policy() == RetentionPolicy(keep_last=4, keep_daily=7)  # saving the schedule kept it
    assert cfg.drill_every_days == 2.0  # and the restore drills' period


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


def _aged_backups(db, settings_of, hours: list[float]) -> list[str]:
    """Backups as if made ``hours`` ago (newest last in ``hours``), through the aging helper of the core tests."""
    from backup_core.backup import BackupOptions, create_backup
    from tests.test_retention import _aged

    store = LocalStore(settings_of.backup_root)
    return [_aged(store, create_backup(db, store, BackupOptions(user="t")).backup_id, h / 24) for h in hours]


def test_policy_preview_then_save_then_confirmed_clean_up(open_page, auto_env, db, settings_of, root):
    from backup_core.retention import RetentionPolicy

    ids = _aged_backups(db, settings_of, [30, 20, 10, 2])  # oldest first
    at = open_page()
    table = frame_with(at, "decision")
    assert list(table["decision"]) == ["keep"] * 4  # the default: younger than 7 days
    assert set(table["why"]) == {"newest backup, younger than 7d", "younger than 7d"}
    scheduler.save_retention_policy(settings_of, RetentionPolicy(keep_last=3), user="t")
    at = open_page()
    assert at.number_input(key="auto_older_than").value is None and at.number_input(key="auto_keep_last").value == 3
    assert dict(zip(frame_with(at, "decision")["backup"], frame_with(at, "decision")["decision"]))[ids[0]] == "delete"

    at.number_input(key="auto_keep_last").set_value(2)
    at.number_input(key="auto_safety_days").set_value(3.0)
    next(b for b in at.button if b.label == "Preview").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    table = frame_with(at, "decision")
    assert dict(zip(table["backup"], table["decision"])) == {
        ids[3]: "keep", ids[2]: "keep", ids[1]: "delete", ids[0]: "delete"}
    assert "not saved" in texts(at, "markdown")
    assert not [b for b in at.button if b.key == "auto_cleanup_now"]  # deleting only what the saved policy says
    assert scheduler.load_config(settings_of).retention_policy() == RetentionPolicy(keep_last=3)

    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Saved the clean-up policy: keep last 2;" in texts(at, "success")
    table = frame_with(at, "decision")
    assert dict(zip(table["backup"], table["decision"])) == {
        ids[3]: "keep", ids[2]: "keep", ids[1]: "delete", ids[0]: "delete"}
    why = dict(zip(table["backup"], table["why"]))
    assert why[ids[3]] == "newest backup, last 2" and why[ids[0]] == "no rule keeps it"
    assert len(LocalStore(root).list_backups()) == 4  # nothing deleted before the confirmation
    button = at.button(key="auto_cleanup_now")
    assert button.label == "Delete 2 backups now"
    button.click().run()
    assert not at.exception, at.exception
    assert "Clean-up deleted 2 backups, kept 2" in texts(at, "success")
    assert sorted(b.backup_id for b in LocalStore(root).list_backups()) == sorted(ids[2:])
    assert at.button(key="auto_cleanup_now").disabled  # nothing left to delete


def test_clean_up_refuses_when_the_backups_changed_since_the_preview(open_page, auto_env, db, settings_of, root):
    from backup_core.retention import RetentionPolicy

    _aged_backups(db, settings_of, [30, 20])
    scheduler.save_retention_policy(settings_of, RetentionPolicy(keep_last=1), user="t")
    at = open_page()
    assert at.button(key="auto_cleanup_now").label == "Delete 1 backup now"
    _aged_backups(db, settings_of, [1])  # made meanwhile: the policy would now delete two
    at.button(key="auto_cleanup_now").click().run()
    assert not at.exception, at.exception
    assert "changed since the preview" in texts(at, "error")
    assert len(LocalStore(root).list_backups()) == 3


@pytest.mark.parametrize("field,value", [("auto_keep_daily", -1), ("auto_keep_last", -3),
                                         ("auto_safety_days", -2.0), ("auto_older_than", -1.0)])
def test_rule_fields_take_no_negative_numbers(open_page, auto_env, settings_of, field, value):
    at = open_page()
    assert at.number_input(key=field).min == 0
    at.number_input(key=field).set_value(value)
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.exception, at.exception
    policy = scheduler.load_config(settings_of).retention_policy()
    assert all(getattr(policy, f) is None or getattr(policy, f) >= 0 for f in ("keep_daily", "keep_last"))
    assert policy.safety_days >= 0


@pytest.mark.parametrize("values,message", [
    ({"keep_last": 2.5}, "“Keep the last” must be a whole number of 0 or more"),
    ({"keep_daily": -1}, "“Keep daily” must be a whole number of 0 or more"),
    ({"older_than_days": float("nan")}, "must be 0 or more (empty or 0: not used)"),
    ({"safety_days": None}, "“Keep safety backups for (days)” must be 0 or more"),
    ({"keep_within": "soon"}, "invalid “Keep everything within … of the newest”")])
def test_policy_form_values_are_checked(values, message):
    from backup_core.errors import UsageError
    from webui.retention_view import policy_from_form

    form = {"keep_last": None, "keep_hourly": None, "keep_daily": None, "keep_weekly": None, "keep_monthly": None,
            "keep_within": "", "older_than_days": None, "safety_days": 7.0, **values}
    with pytest.raises(UsageError) as err:
        policy_from_form(form)
    assert message in str(err.value)


def test_older_than_can_be_emptied_or_zero_so_keep_last_alone_is_a_policy(open_page, auto_env, settings_of):
    from backup_core.retention import RetentionPolicy

    at = open_page()
    assert at.number_input(key="auto_older_than").value == pytest.approx(7.0)  # the default rule, shown
    at.number_input(key="auto_older_than").set_value(0.0)  # 0: not used (as empty is)
    at.number_input(key="auto_keep_last").set_value(5)
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert scheduler.load_config(settings_of).retention_policy() == RetentionPolicy(keep_last=5)
    at.run()  # the fields show the saved policy: "younger than" is empty now, not back at 7
    assert at.number_input(key="auto_older_than").value in (None, 0.0)
    at.number_input(key="auto_older_than").set_value(None)
    at.number_input(key="auto_keep_last").set_value(None)
    at.number_input(key="auto_keep_daily").set_value(7)
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.error, texts(at, "error")
    assert scheduler.load_config(settings_of).retention_policy() == RetentionPolicy(keep_daily=7)


def test_a_failed_preview_leaves_no_stale_preview(open_page, auto_env, db, settings_of):
    _aged_backups(db, settings_of, [30, 2])
    at = open_page()
    at.number_input(key="auto_keep_last").set_value(1)
    next(b for b in at.button if b.label == "Preview").click().run()
    assert "Preview of the policy above" in texts(at, "markdown")
    at.text_input(key="auto_keep_within").set_value("soon")
    next(b for b in at.button if b.label == "Preview").click().run()
    assert "Cannot preview" in texts(at, "error")
    assert "Preview of the policy above" not in texts(at, "markdown")


def test_keep_within_takes_a_duration(open_page, auto_env, settings_of):
    at = open_page()
    at.text_input(key="auto_keep_within").set_value("soon")
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert "invalid “Keep everything within … of the newest”" in texts(at, "error")
    at.text_input(key="auto_keep_within").set_value("36h")
    next(b for b in at.button if b.label == "Save policy").click().run()
    assert not at.error, texts(at, "error")
    assert scheduler.load_config(settings_of).retention_policy().keep_within.total_seconds() == 36 * 3600
    assert at.text_input(key="auto_keep_within").value == "36h"


def test_failed_last_run_shows_warning(open_page, auto_env, monkeypatch, root):
    monkeypatch.setattr(scheduler.runs, "BACKUP_LOCK_TIMEOUT", 0.2)
    at = open_page()
    with open_store(root).lock("restore"):  # a restore holds the root: the backup gives up
        at.button(key="auto_run_now").click().run()
    assert not at.exception, at.exception
    assert "backup failed" in texts(at, "error").lower() and "locked by restore" in texts(at, "error")
    assert "Check the database connection" not in texts(at, "error")  # the error says what failed, no guess
    assert "The last manual backup failed: " in texts(at, "warning")


def test_an_unreachable_database_is_said_not_a_crash(open_page, auto_env, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    at = open_page()
    assert "scheduler's state cannot be read" in texts(at, "error")
    assert any(m.label == "Scheduler" and m.value == "unknown" for m in at.metric)


def test_notifications_not_configured(open_page, auto_env, monkeypatch):
    monkeypatch.delenv("BACKUP_NOTIFY", raising=False)
    at = open_page()
    assert "Notifications are not configured" in texts(at, "info")
    assert at.button(key="auto_test_notify").disabled


def test_notifications_are_shown_masked_and_a_test_is_sent(open_page, auto_env, monkeypatch, receiver):
    monkeypatch.setenv("BACKUP_NOTIFY", receiver.url.replace("json://", "json://bob:s3cretpw@"))
    at = open_page()
    shown = " ".join(str(c.value) for c in at.caption)
    assert "json://bob:****@127.0.0.1:" in shown and "s3cretpw" not in shown
    at.button(key="auto_test_notify").click().run()
    assert not at.exception, at.exception
    assert "notification sent" in texts(at, "success")
    assert len(receiver.messages) == 1 and receiver.messages[0]["title"].startswith("[MongoDB backup] Test")
    assert "s3cretpw" not in texts(at, "success")


def test_viewer_cannot_change(open_page, auto_env, root):
    at = open_page("viewer")
    keys = {b.key for b in at.button}
    assert not keys & {"auto_run_now", "auto_check_now", "auto_cleanup_now"}  # not shown at all
    assert next(b for b in at.button if b.label == "Save").disabled
    assert next(b for b in at.button if b.label == "Save policy").disabled
    assert at.button(key="auto_test_notify").disabled
    assert "Deleting backups needs the admin role" in texts(at, "caption")
    assert "Running backups needs the admin role" in texts(at, "caption")


def test_a_viewer_click_on_test_notification_is_refused_on_the_server(open_page, auto_env, monkeypatch,
                                                                       receiver):
    monkeypatch.setenv("BACKUP_NOTIFY", receiver.url)
    at = open_page("viewer")
    assert at.button(key="auto_test_notify").disabled
    forged_click(at, at.button(key="auto_test_notify"))
    assert not at.exception, at.exception
    # Streamlit drops a disabled widget's value; the section checks the role where it sends, too
    assert receiver.messages == [] and not at.success


def test_a_viewer_save_of_the_schedule_is_refused_on_the_server(open_page, auto_env, settings_of):
    at = open_page("viewer")
    at.number_input(key="auto_interval").set_value(5.0)
    forged_click(at, next(b for b in at.button if b.label == "Save"))
    assert not at.exception, at.exception
    assert scheduler.load_config(settings_of).interval_hours == 1.0
    at.number_input(key="auto_keep_last").set_value(1)
    forged_click(at, next(b for b in at.button if b.label == "Save policy"))
    assert scheduler.load_config(settings_of).policy is None
