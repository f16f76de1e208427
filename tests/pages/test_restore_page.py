"""The Restore page through Streamlit's AppTest: compare, dry run, restore, undo, upload, roles."""

from __future__ import annotations

import pytest

from backup_core.backup import BackupOptions, create_backup
from backup_core.store import LocalStore

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
    assert "no backups yet" in texts(at, "info").lower()


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
    assert list(changed["backup"]) == ["20"] and list(changed["live"]) == ["999"]
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

    at.button(key="restore_undo_btn").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert db["Equipment"].find_one({"_id": 2})["qty"] == 999
    assert db["Equipment"].find_one({"_id": 3}) is None
    assert db["Equipment"].find_one({"_id": 100})["name"] == "new since backup"
    assert "Undone" in texts(at, "info")


def test_undo_removes_a_collection_the_restore_created(open_page, restore_env, backed_up, db, db_name, root):
    db.drop_collection("Equipment_select_options")
    at = open_page()
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    at.button(key="restore_run_btn").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert db["Equipment_select_options"].count_documents({}) == 3
    at.button(key="restore_undo_btn").click().run()
    assert not at.exception and not at.error, texts(at, "error")
    assert "Equipment_select_options" not in db.list_collection_names()
    assert "Undone" in texts(at, "info")

    # the safety backup, picked on the page, offers the created collection as one to remove
    safety = next(b for b in LocalStore(root).list_backups() if b.trigger == "safety"
                  and b.absent_collections == ["Equipment_select_options"])
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
    assert "admin role" in texts(at, "error")
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
    from backup_core import comparison

    calls = []
    real = comparison.StoredComparison.compute.__func__

    def counting(cls, *a, **kw):
        calls.append(1)
        return real(cls, *a, **kw)

    monkeypatch.setattr(comparison.StoredComparison, "compute", classmethod(counting))
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
