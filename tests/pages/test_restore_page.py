"""The Restore page through Streamlit's AppTest: compare, dry run, restore, undo, upload, roles."""

from __future__ import annotations

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.store import LocalStore

from tests.pages.conftest import undo_latest
from tests.pages.conftest import values as texts

PAGE = "pages/2_Restore.py"


@pytest.fixture
def restore_env(page_env, make_app):
    return make_app


@pytest.fixture
def backed_up(db, root):
    """A small database and one backup of it; returns the backup id."""
    db["Equipment"].insert_many([{"_id": i, "name": f"item {i}", "qty": i * 10, "spec": {"w": i}}
                                 for i in range(1, 9)])
    db["Equipment_select_options"].insert_many([{"_id": f"o{i}", "label": f"Option {i}"} for i in range(3)])
    return create_backup(db, LocalStore(root), BackupOptions(user="tester")).backup_id


def change_live(db) -> None:
    db["Equipment"].update_one({"_id": 2}, {"$set": {"qty": 999}})
    db["Equipment"].delete_one({"_id": 3})
    db["Equipment"].insert_one({"_id": 100, "name": "new since backup"})


def test_page_renders_without_backups(open_page, restore_env):
    at = open_page()
    assert not at.exception
    assert "no readable backups yet" in texts(at, "info").lower()


def test_compare_shows_changes_and_fields(open_page, restore_env, backed_up, db):
    change_live(db)
    at = open_page()
    assert at.selectbox(key="restore_backup").value == backed_up
    at.button(key="restore_compare_btn").click().run()
    assert not at.exception, at.exception
    counts = at.dataframe[1].value  # [0] is the backup's own collection list
    row = counts.set_index("collection").loc["Equipment"]
    assert (row["only in backup"], row["only in live"], row["changed"], row["identical"]) == (1, 1, 1, 6)
    records = at.dataframe[2].value
    by_status = {s: g for s, g in records.groupby("status")}
    changed = by_status["changed"]  # statuses are shown as words: "only in backup", ...
    assert list(changed["field"]) == ["qty"]
    assert list(changed["backup"]) == ["20 (int)"] and list(changed["live"]) == ["999 (int)"]
    assert set(by_status) == {"changed", "only in backup", "only in live"}

    # filter by status and by text
    at.multiselect(key="restore_diff_status").set_value(["changed"]).run()
    assert set(at.dataframe[2].value["status"]) == {"changed"}
    at.multiselect(key="restore_diff_status").set_value(["only_in_backup", "only_in_live", "changed"])
    at.text_input(key="restore_diff_text").set_value("new since backup").run()
    assert list(at.dataframe[2].value["key"]) == ["100"]


def test_dry_run_shows_counts_and_changes_nothing(open_page, restore_env, backed_up, db):
    change_live(db)
    at = open_page()
    at.button(key="restore_preview_btn").click().run()
    assert not at.exception, at.exception
    plan = at.dataframe[-1].value.set_index("collection")
    assert plan.loc["Equipment", "inserted"] == 1
    assert plan.loc["Equipment", "updated"] == 1
    assert plan.loc["Equipment", "deleted"] == 1
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 999  # nothing changed


def test_replace_restore_needs_typed_name_then_undo(open_page, restore_env, backed_up, db, db_name, root):
    change_live(db)
    at = open_page()
    run_btn = at.button(key="restore_run_btn")
    assert run_btn.disabled
    at.text_input(key="restore_confirm_text").set_value("wrong").run()
    assert at.button(key="restore_run_btn").disabled
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    assert not at.button(key="restore_run_btn").disabled
    at.button(key="restore_run_btn").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 20
    assert db["Equipment"].find_one({"_id": 3}) is not None
    assert db["Equipment"].find_one({"_id": 100}) is None
    success = texts(at, "success")
    assert "Safety backup" in success
    safety = [b.backup_id for b in LocalStore(root).list_backups() if b.trigger == "safety"]
    assert len(safety) == 1 and safety[0] in success
    # the typed confirmation is cleared: a second click cannot restore again by accident
    assert at.text_input(key="restore_confirm_text").value == ""
    assert at.button(key="restore_run_btn").disabled

    undo_latest(at, db_name)
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 999
    assert db["Equipment"].find_one({"_id": 3}) is None
    assert db["Equipment"].find_one({"_id": 100})["name"] == "new since backup"
    assert "Undone" in texts(at, "success")


def test_undo_removes_a_collection_the_restore_created(open_page, restore_env, backed_up, db, db_name, root):
    db.drop_collection("Equipment_select_options")
    at = open_page()
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    at.button(key="restore_run_btn").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert db["Equipment_select_options"].count_documents({}) == 3
    undo_latest(at, db_name)
    assert not at.exception and not at.error, texts(at, "error")
    assert "Equipment_select_options" not in db.list_collection_names()
    assert "Undone" in texts(at, "success")

    # the safety backup, picked on the page, offers the created collection as one to remove
    safety = next(b for b in LocalStore(root).list_backups() if b.trigger == "safety"
                  and b.absent_collections == ["Equipment_select_options"])
    assert not any(o.startswith(safety.backup_id) for o in at.selectbox(key="restore_backup").options)  # hidden
    at.toggle(key="restore_show_safety").set_value(True).run()
    at.selectbox(key="restore_backup").set_value(safety.backup_id).run()
    assert not at.exception, at.exception
    assert "Equipment_select_options" in at.multiselect(key="restore_collections").options[-1]


def test_merge_restore_keeps_live_only_documents(open_page, restore_env, backed_up, db, db_name):
    change_live(db)
    at = open_page()
    at.radio(key="restore_mode").set_value("merge").run()
    assert at.button(key="restore_run_btn").disabled
    at.checkbox(key="restore_confirm_check").check().run()
    at.button(key="restore_run_btn").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 20
    assert db["Equipment"].find_one({"_id": 100}) is not None  # merge keeps it


def test_viewer_can_compare_but_not_restore(open_page, restore_env, backed_up, db):
    change_live(db)
    at = open_page("viewer")
    at.button(key="restore_compare_btn").click().run()
    assert not at.exception, at.exception
    assert len(at.dataframe) >= 2
    assert "admin role" in texts(at, "info") and not at.error
    keys = {b.key for b in at.button}
    assert "restore_run_btn" not in keys and "restore_preview_btn" not in keys
    assert not at.file_uploader


def test_bad_upload_shows_error(open_page, restore_env, root):
    at = open_page()
    at.file_uploader(key="restore_upload").upload("backup.zip", b"this is not a zip", "application/zip").run()
    at.button(key="restore_import_btn").click().run()
    assert not at.exception, at.exception
    assert "zip" in texts(at, "error").lower()
    assert LocalStore(root).list_backups() == []


def test_good_upload_imports(open_page, restore_env, backed_up, root, tmp_path):
    from backup_core import transfer

    out = tmp_path / "b.zip"
    transfer.export_backup(LocalStore(root), backed_up, out)
    LocalStore(root).delete(backed_up)
    at = open_page()
    at.file_uploader(key="restore_upload").upload("b.zip", out.read_bytes(), "application/zip").run()
    at.button(key="restore_import_btn").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert backed_up in texts(at, "success")
    assert LocalStore(root).get(backed_up).backup_id == backed_up


def test_uploading_the_same_zip_twice_says_it_was_already_there(open_page, restore_env, backed_up, root,
                                                                  tmp_path):
    from backup_core import audit, transfer

    out = tmp_path / "b.zip"
    transfer.export_backup(LocalStore(root), backed_up, out)
    LocalStore(root).delete(backed_up)
    at = open_page()
    for attempt in (1, 2):
        at.file_uploader(key="restore_upload").upload("b.zip", out.read_bytes(), "application/zip").run()
        at.button(key="restore_import_btn").click().run()
        assert not at.exception, at.exception
        assert not at.error, texts(at, "error")
        if attempt == 1:
            assert f"Imported backup **{backed_up}**" in texts(at, "success")
        else:
            assert "Imported" not in texts(at, "success")
            assert f"Backup **{backed_up}** was already present (identical); nothing was imported." \
                in texts(at, "info")
    assert [b.backup_id for b in LocalStore(root).list_backups()] == [backed_up]
    entry = audit.read(root, 1, audit.AuditFilter(action="import"))[0]
    assert entry["backup_id"] == backed_up and entry["already_present"] is True


def test_backup_of_another_database_needs_explicit_checkbox(open_page, page_env, client, db, root):
    other = client[f"{db.name}_other"]
    try:
        other["Equipment"].insert_many([{"_id": i, "name": f"other {i}"} for i in range(3)])
        create_backup(other, LocalStore(root), BackupOptions(user="tester"))
        db["Equipment"].insert_one({"_id": 99, "name": "live only"})
        at = open_page()
        assert "taken from database" in texts(at, "warning")
        at.text_input(key="restore_confirm_text").set_value(db.name).run()
        assert at.button(key="restore_run_btn").disabled  # typed name alone is not enough
        at.checkbox(key="restore_allow_other_db").check().run()
        assert not at.button(key="restore_run_btn").disabled
        at.button(key="restore_run_btn").click().run()
        assert not at.exception, at.exception
        assert not at.error, texts(at, "error")
        assert sorted(d["name"] for d in db["Equipment"].find()) == ["other 0", "other 1", "other 2"]
        assert at.checkbox(key="restore_allow_other_db").value is False  # reset after the restore
    finally:
        client.drop_database(other.name)


def test_the_comparison_is_computed_once_for_paging_and_filters(open_page, restore_env, backed_up, db,
                                                                monkeypatch):
    from backup_core import paged_compare

    calls = []
    real = paged_compare.StoredComparison.compute.__func__

    def counting(cls, *a, **kw):
        calls.append(1)
        return real(cls, *a, **kw)

    monkeypatch.setattr(paged_compare.StoredComparison, "compute", classmethod(counting))
    change_live(db)
    at = open_page()
    at.button(key="restore_compare_btn").click().run()
    assert len(calls) == 1
    at.multiselect(key="restore_diff_status").set_value(["changed"]).run()
    at.text_input(key="restore_diff_text").input("item").run()
    at.number_input(key="restore_diff_page").set_value(2).run()
    at.radio(key="restore_mode").set_value("merge").run()
    assert not at.exception
    assert len(calls) == 1  # paging, filters and the mode did not recompute anything
    db["Equipment"].insert_one({"_id": 200})  # live data changed: the old figures would mislead
    at.number_input(key="restore_diff_page").set_value(1).run()
    assert len(calls) == 2


def test_differences_name_documents_and_totals_show_once(open_page, restore_env, backed_up, db):
    change_live(db)
    at = open_page()
    at.button(key="restore_compare_btn").click().run()
    records = at.dataframe[2].value
    assert "document" in records.columns
    assert set(records["document"]) >= {"name: item 2", "name: new since backup"}
    assert not any("only in backup ·" in m.value for m in at.markdown)  # the table is the one place


def test_a_match_key_no_document_has(open_page, restore_env, backed_up, db):
    at = open_page()
    at.text_input(key="restore_match_key").input("no_such_field").run()
    at.button(key="restore_compare_btn").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "no document" in errors and "no_such_field" in errors and "several" not in errors


def _restore_replace(at, db_name):
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    at.button(key="restore_run_btn").click().run()
    assert not at.exception and not at.error, texts(at, "error")


def _frame(at, column):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_safety_backups_are_hidden_and_listed_next_to_their_restore(open_page, restore_env, backed_up, db,
                                                                     db_name, root):
    change_live(db)
    at = open_page()
    _restore_replace(at, db_name)
    safety = next(b.backup_id for b in LocalStore(root).list_backups() if b.trigger == "safety")
    options = at.selectbox(key="restore_backup").options  # labels: "<id> · <local time> · manual · 11 docs"
    assert [o.split(" ")[0] for o in options] == [backed_up]  # the safety backup is not in the list
    assert "1 safety backup (taken by restores before they changed data) not listed" in texts(at, "caption")
    recent = _frame(at, "safety backup")
    assert list(recent["restored backup"]) == [backed_up] and list(recent["safety backup"]) == [safety]
    assert list(recent["undo"]) == ["possible (latest)"] and list(recent["action"]) == ["restore (replace)"]
    at.toggle(key="restore_show_safety").set_value(True).run()
    assert safety in [o.split(" ")[0] for o in at.selectbox(key="restore_backup").options]


def test_undo_stays_available_in_a_new_session_and_only_for_the_latest(open_page, restore_env, backed_up, db,
                                                                         db_name, root):
    change_live(db)
    _restore_replace(open_page(), db_name)
    assert db["Equipment"].find_one({"_id": 100}) is None
    at = open_page()  # another session (a reload, another admin): the audit log knows the restore
    assert not at.success  # no result of this session
    assert at.button(key="restore_undo_btn").label == "Undo"
    assert backed_up in texts(at, "markdown")  # which restore: next to the button
    undo_latest(at, db_name)
    assert not at.exception and not at.error, texts(at, "error")
    assert db["Equipment"].find_one({"_id": 100})["name"] == "new since backup"
    assert "Undone" in texts(at, "success")
    recent = _frame(at, "safety backup")
    assert len(recent) == 2 and recent["undo"].iloc[1].startswith("undone ")
    assert list(recent["action"]) == [f"Undo of {backed_up}", "restore (replace)"]
    # the latest restore is undone: nothing is left to undo (an undo is not undone by another undo)
    assert not [b for b in at.button if b.key == "restore_undo_btn"]


def test_an_undo_offered_before_another_restore_is_refused(open_page, restore_env, backed_up, db, db_name):
    change_live(db)
    first = open_page()
    _restore_replace(first, db_name)
    first.button(key="restore_undo_btn").click().run()  # the dry run of undoing the first restore
    second = open_page()
    _restore_replace(second, db_name)  # another admin restores again meanwhile
    db["Equipment"].insert_one({"_id": 500, "name": "written after the second restore"})
    first.text_input(key="restore_undo_confirm_text").set_value(db_name).run()
    assert not first.exception, first.exception
    assert "no longer the latest" in texts(first, "info")  # the old dry run is put away, not run
    assert not [b for b in first.button if b.key == "restore_undo_run_btn"]
    assert db["Equipment"].find_one({"_id": 500}) is not None  # nothing changed


def test_compared_at_is_local_time(open_page, restore_env, backed_up, db, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        at = open_page()
        at.button(key="restore_compare_btn").click().run()
        caption = next(c for c in texts(at, "caption").splitlines() if c.startswith("Compared at"))
        assert "UTC+09:00" in caption and "Z" not in caption.split(" (in")[0]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_restore_progress_bar_shows_each_phase_with_rate_and_time_left():
    """The bar the page draws during a restore: phase, documents done / total, rate, time left."""
    from webui.progress import PhaseBar

    class Element:
        def __init__(self):
            self.drawn = []

        def progress(self, fraction, text):
            self.drawn.append((round(fraction, 2), text))

    now = {"t": 0.0}
    element = Element()
    bar = PhaseBar(element, clock=lambda: now["t"])
    bar.callback.phase("comparing backup and live data")
    bar.callback("Equipment", 0, 1000)
    now["t"] = 1.0
    bar.callback("Equipment", 400, 1000)
    now["t"] = 1.1
    bar.callback("Equipment", 450, 1000)  # too soon: not drawn
    bar.callback.phase("writing")  # a new phase is drawn at once, from zero
    now["t"] = 2.0
    bar.callback("Equipment", 1000, 1000)  # the end of a phase is always drawn
    texts = [t for _, t in element.drawn]
    assert texts[0] == "comparing backup and live data · starting"
    assert any(t.startswith("comparing backup and live data · Equipment · 400 / 1,000 documents (40 %) · 400 documents/s"
                            " · about 1.5 s left") for t in texts), texts
    assert not any("450" in t for t in texts)
    assert texts[-2] == "writing · starting"
    assert element.drawn[-1][0] == 1.0 and element.drawn[-1][1].startswith("writing · 1,000 / 1,000 documents (100 %)")


def _viewer_calls_the_model(backup_id: str):
    import streamlit as st

    from backup_core.auth import User
    from backup_core.config import Settings
    from backup_core.restore import RestoreOptions
    from webui.common import run_core
    from webui.restore_flow import RestoreFlow
    from webui.ui import Ui

    flow = RestoreFlow(Ui(User("vic", "viewer"), Settings.load()))
    result = run_core(flow.restore, backup_id, RestoreOptions(mode="replace", confirmed=True, user="vic"))
    st.write(f"result: {result}")


def test_the_restore_model_refuses_a_viewer_whatever_the_widgets_do(restore_env, backed_up, db):
    from streamlit.testing.v1 import AppTest

    change_live(db)
    at = AppTest.from_function(_viewer_calls_the_model, args=(backed_up,), default_timeout=30).run()
    assert not at.exception, at.exception
    assert "Restoring a backup needs the admin role" in texts(at, "error")
    assert at.markdown[0].value == "result: None"
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 999  # nothing restored
