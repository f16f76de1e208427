"""Archive rules on the Auto Backup page: add, save, remove; bad rules refused; pending archives; viewers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from backup_core import audit, scheduler
from backup_core.archive import ArchiveRule
from backup_core.config import Settings
from backup_core.store import LocalStore

from tests.pages.conftest import forged_click, frame_with
from tests.pages.conftest import values as texts

PAGE = "pages/3_Auto_Backup.py"
from tests.test_archive_rules import _no_cached_clients, seed_activity  # noqa: F401 (an autouse fixture)

NOW = datetime.now(timezone.utc)


@pytest.fixture
def activity(page_env, db):
    return seed_activity(db)


@pytest.fixture
def settings_of(page_env):
    return Settings(uri=page_env["uri"], db_name=page_env["db"], backup_root=page_env["root"])


def _add(at, collection, field, days, mode="auto"):
    at.selectbox(key="archive_collection").set_value(collection)
    at.text_input(key="archive_field").set_value(field)
    at.number_input(key="archive_days").set_value(days)
    at.radio(key="archive_mode").set_value(mode)
    at.button(key="archive_add").click().run()
    assert not at.exception, at.exception
    return at


def test_add_save_and_remove_rules(open_page, activity, settings_of):
    at = open_page()
    assert "No archive rules" in texts(at, "info")
    assert set(at.selectbox(key="archive_collection").options) >= {"activities", "bookings"}
    _add(at, "activities", "at", 95.0, "auto")
    assert not at.error, texts(at, "error")
    rules = frame_with(at, "date field")
    assert list(rules["collection"]) == ["activities"] and list(rules["saved"]) == ["not saved yet"]
    assert list(rules["after each scheduled backup"]) == ["purge automatically"]
    assert "not saved yet" in texts(at, "warning")
    assert "10 documents of activities match it now" in texts(at, "info")  # the dry run's count
    assert activity["activities"].count_documents({}) == 20
    assert scheduler.archive_rules(settings_of) == []  # adding alone saves nothing
    _add(at, "bookings", "end", 365.0, "confirm")
    at.button(key="archive_save").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert "Saved 2 archive rules" in texts(at, "success")
    assert scheduler.archive_rules(settings_of) == [ArchiveRule("activities", "at", 95.0, "auto"),
                                                    ArchiveRule("bookings", "end", 365.0, "confirm")]
    assert list(frame_with(at, "date field")["saved"]) == ["yes", "yes"]
    assert at.button(key="archive_save").disabled  # nothing to save
    # remove one, save
    at.selectbox(key="archive_remove_pick").set_value("activities:at")
    at.button(key="archive_remove").click().run()
    assert list(frame_with(at, "date field")["collection"]) == ["bookings"]
    assert len(scheduler.archive_rules(settings_of)) == 2  # not saved yet
    at.button(key="archive_save").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert scheduler.archive_rules(settings_of) == [ArchiveRule("bookings", "end", 365.0, "confirm")]


@pytest.mark.parametrize("field,days,message", [
    ("$where", 90.0, "bad field name"), ("", 90.0, "bad field name"),
    ("at", 0.0, "older_than_days must be a positive number")])
def test_a_bad_rule_is_refused_and_nothing_is_saved(open_page, activity, settings_of, field, days, message):
    at = open_page()
    _add(at, "activities", field, days)
    assert message in texts(at, "error") and "Not added" in texts(at, "error")
    assert "No archive rules" in texts(at, "info")  # not in the draft either
    assert at.button(key="archive_save").disabled
    assert scheduler.archive_rules(settings_of) == []


def test_a_second_rule_for_the_same_field_is_refused(open_page, activity, settings_of):
    scheduler.save_archive_rules(settings_of, [ArchiveRule("activities", "at", 90.0)], user="t")
    at = open_page()
    _add(at, "activities", "at", 30.0, "confirm")
    assert "already" in texts(at, "error")
    assert scheduler.archive_rules(settings_of) == [ArchiveRule("activities", "at", 90.0)]
    assert list(frame_with(at, "date field")["saved"]) == ["yes"]


def test_a_pending_archive_is_confirmed(open_page, activity, settings_of, root):
    scheduler.save_archive_rules(settings_of, [ArchiveRule("bookings", "end", 365.0, "confirm")], user="t")
    at = open_page()
    assert "None." in texts(at, "caption")
    at.button(key="archive_prepare").click().run()  # what the scheduler does after each backup
    assert not at.exception, at.exception
    assert "bookings: 4" in texts(at, "info")
    assert activity["bookings"].count_documents({}) == 8  # counting deletes nothing
    waiting = frame_with(at, "counted at")
    assert list(waiting["documents"]) == [4] and list(waiting["collection"]) == ["bookings"]
    warning = texts(at, "warning")
    assert "Confirming deletes the **4 documents** of **bookings**" in warning and "verified" in warning
    assert "archive backup holds them" in warning
    confirm = at.button(key="archive_confirm_bookings__end")
    assert confirm.label == "Confirm and purge" and confirm.disabled  # until the box is ticked
    forged_click(at, confirm)
    assert activity["bookings"].count_documents({}) == 8
    at.checkbox(key="archive_ack_bookings__end").check().run()
    at.button(key="archive_confirm_bookings__end").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert activity["bookings"].count_documents({}) == 4
    assert activity["bookings"].count_documents({"end": {"$lt": NOW - timedelta(days=365)}}) == 0
    (archive,) = [b for b in LocalStore(root).list_backups() if b.trigger == "archive"]
    assert archive.collection("bookings").count == 4
    assert f"Archived 4 documents of bookings in backup {archive.backup_id} (verified)" in texts(at, "success")
    assert scheduler.pending_archives(settings_of) == []
    assert not [b for b in at.button if (b.key or "").startswith("archive_confirm_")]


def test_a_pending_archive_is_dismissed(open_page, activity, settings_of, root):
    rule = ArchiveRule("bookings", "end", 365.0, "confirm")
    scheduler.save_archive_rules(settings_of, [rule], user="t")
    scheduler.prepare_archive(settings_of, rule)
    at = open_page()
    at.button(key="archive_dismiss_bookings__end").click().run()
    assert not at.exception, at.exception
    assert "Dismissed" in texts(at, "info") and "nothing was deleted" in texts(at, "info")
    assert scheduler.pending_archives(settings_of) == []
    assert activity["bookings"].count_documents({}) == 8
    assert not [b for b in LocalStore(root).list_backups() if b.trigger == "archive"]
    assert audit.read(root, 5, audit.AuditFilter(action="archive-dismiss"))[0]["user"] == "admin"


def test_a_viewer_sees_the_rules_read_only(open_page, activity, settings_of):
    rule = ArchiveRule("bookings", "end", 365.0, "confirm")
    scheduler.save_archive_rules(settings_of, [rule, ArchiveRule("activities", "at", 90.0)], user="t")
    scheduler.prepare_archive(settings_of, rule)
    at = open_page("viewer")
    assert not at.exception, at.exception
    assert list(frame_with(at, "date field")["collection"]) == ["bookings", "activities"]
    assert list(frame_with(at, "counted at")["documents"]) == [4]
    assert not [b for b in at.button if (b.key or "").startswith("archive_")]
    assert not [w for w in at.text_input if w.key == "archive_field"]
    assert "needs the admin role" in texts(at, "caption")
    assert activity["bookings"].count_documents({}) == 8


def test_a_rule_on_a_field_without_dates_is_added_with_a_warning(open_page, activity, settings_of):
    at = open_page()
    _add(at, "activities", "created", 30.0)
    assert "no document of activities has a date in created" in texts(at, "warning")
    assert list(frame_with(at, "date field")["date field"]) == ["created"]
    assert scheduler.archive_rules(settings_of) == []
