"""Undo on the Restore page: a dry run first, then the database name typed, then only the restore's collections.

The Undo button only shows what undoing the latest restore would change
(counts per collection); the data changes after the typed confirmation and
"Undo now". Recent restores and the Audit Log call an undo an undo; viewers
get no undo control; a refusal of the core is one ``st.error``.
"""

from __future__ import annotations

import pytest

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import LocalStore

from tests.pages.conftest import forged_click, frame_with, run_page, undo_latest
from tests.pages.conftest import values as texts

PAGE = "pages/2_Restore.py"


def docs(db, name) -> list[dict]:
    return list(db[name].find({}, sort=[("_id", 1)]))


@pytest.fixture
def restored(page_env, db, root):
    """A backup of Equipment and Options, live Equipment changed, then a replace restore of Equipment only.

    Returns (backup id, Equipment as it was before the restore)."""
    db["Equipment"].insert_many([{"_id": i, "name": f"item {i}", "qty": i} for i in range(1, 9)])
    db["Options"].insert_many([{"_id": f"o{i}", "label": f"Option {i}"} for i in range(3)])
    backup_id = create_backup(db, LocalStore(root), BackupOptions(user="tester")).backup_id
    db["Equipment"].update_one({"_id": 2}, {"$set": {"qty": 999}})
    db["Equipment"].delete_one({"_id": 3})
    db["Equipment"].insert_many([{"_id": 100, "name": "new since backup"}, {"_id": 101, "name": "also new"}])
    before = docs(db, "Equipment")
    restore_backup(db, LocalStore(root), backup_id,
                   RestoreOptions(mode="replace", collections=["Equipment"], confirmed=True, user="tester"))
    assert docs(db, "Equipment") != before
    return backup_id, before


def test_undo_shows_a_dry_run_and_changes_nothing_until_confirmed(open_page, restored, db, db_name):
    backup_id, before = restored
    after_restore = docs(db, "Equipment")
    at = open_page()
    undo = at.button(key="restore_undo_btn")
    assert undo.label == "Undo"
    described = texts(at, "markdown")
    assert f"backup **{backup_id}**" in described and "**Equipment**" in described and "finished" in described
    undo.click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert docs(db, "Equipment") == after_restore  # the click only planned
    plan = frame_with(at, "inserted").set_index("collection")
    assert list(plan.index) == ["Equipment"]  # only what the restore touched
    row = plan.loc["Equipment"]
    assert (row["inserted"], row["updated"], row["deleted"]) == (2, 1, 1)
    assert "Dry run: this is exactly what the undo will do" in texts(at, "markdown")
    assert at.button(key="restore_undo_run_btn").disabled  # nothing typed yet
    assert docs(db, "Equipment") == after_restore


def test_a_wrong_database_name_refuses(open_page, restored, db, db_name, root):
    after_restore = docs(db, "Equipment")
    at = open_page()
    at.button(key="restore_undo_btn").click().run()
    at.text_input(key="restore_undo_confirm_text").set_value(db_name + "x").run()
    assert at.button(key="restore_undo_run_btn").disabled
    forged_click(at, at.button(key="restore_undo_run_btn"))  # what a hand-made message could do
    assert not at.exception, at.exception
    assert docs(db, "Equipment") == after_restore
    assert not [e for e in audit.read(root, 50) if e["action"] == "undo"]


def test_confirmed_undo_puts_back_only_the_restored_collections(open_page, restored, db, db_name, root):
    backup_id, before = restored
    db["Options"].update_one({"_id": "o1"}, {"$set": {"label": "edited after the restore"}})
    options = docs(db, "Options")
    at = open_page()
    undo_latest(at, db_name)
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert docs(db, "Equipment") == before  # back to before the latest restore
    assert docs(db, "Options") == options  # not touched by that restore, so not by its undo
    success = texts(at, "success")
    assert "Undone" in success and "Equipment" in success
    assert frame_with(at, "inserted").set_index("collection").loc["Equipment", "inserted"] == 2
    # the confirmation is emptied, and nothing is left to undo
    assert not [b for b in at.button if b.key in ("restore_undo_btn", "restore_undo_run_btn")]
    assert "nothing to undo" in texts(at, "caption")
    recent = frame_with(at, "safety backup")
    assert list(recent["action"]) == [f"Undo of {backup_id}", "restore (replace)"]
    assert recent["undo"].iloc[1].startswith("undone ")
    # the audit log calls it an undo, and the Audit Log page shows it so
    entries = [e for e in audit.read(root, 20) if e["action"] == "undo"]
    assert {e["outcome"] for e in entries} == {"started", "ok"}
    at.switch_page("pages/5_Audit_Log.py").run()
    assert not at.exception, at.exception
    log = frame_with(at, "action")
    assert "undo" in list(log["action"]) and "undo_dry_run" in list(log["action"])
    row = log[log["action"] == "undo"].iloc[0]
    assert row["outcome"] == "ok" and backup_id in row["details"] and "Equipment" in row["details"]


def test_cancel_puts_the_dry_run_away(open_page, restored, db):
    at = open_page()
    at.button(key="restore_undo_btn").click().run()
    at.button(key="restore_undo_cancel_btn").click().run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.key == "restore_undo_run_btn"]
    assert at.button(key="restore_undo_btn").label == "Undo"


def test_a_viewer_sees_the_restores_but_no_undo(open_page, restored):
    at = open_page("viewer")
    assert not at.exception, at.exception
    assert len(frame_with(at, "safety backup")) == 1
    keys = {b.key for b in at.button}
    assert not keys & {"restore_undo_btn", "restore_undo_run_btn", "restore_undo_cancel_btn"}
    assert not [t for t in at.text_input if t.key == "restore_undo_confirm_text"]
    assert "Undoing a restore needs the admin role" in texts(at, "caption")


def test_one_result_on_screen_at_a_time(open_page, page_env, db, db_name, root, monkeypatch):
    from backup_core import undo as undo_module
    from backup_core.errors import RestoreRefused

    db["Equipment"].insert_many([{"_id": i, "name": f"n{i}"} for i in range(5)])
    create_backup(db, LocalStore(root), BackupOptions(user="tester"))
    db["Equipment"].delete_one({"_id": 1})
    at = open_page()
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    at.button(key="restore_run_btn").click().run()
    assert "Restored backup" in texts(at, "success")
    at.button(key="restore_undo_btn").click().run()  # the dry run of the undo: the restore's banner is history
    assert not at.exception, at.exception
    assert "Restored backup" not in texts(at, "success") and not at.success
    # an undo that fails: one error, nothing changed, its dry run put away
    real = undo_module.undo
    monkeypatch.setattr(undo_module, "undo", lambda *a, **kw: (_ for _ in ()).throw(
        RestoreRefused("the lock is held by another restore: nothing was changed")))
    at.text_input(key="restore_undo_confirm_text").set_value(db_name).run()
    at.button(key="restore_undo_run_btn").click().run()
    assert not at.exception, at.exception
    assert "lock is held" in texts(at, "error") and not at.success
    assert db["Equipment"].find_one({"_id": 1}) is not None  # still as restored
    monkeypatch.setattr(undo_module, "undo", real)
    # then a success: the failure's message does not stay
    undo_latest(at, db_name)
    assert not at.exception, at.exception
    assert "Undone" in texts(at, "success") and not at.error
    assert db["Equipment"].find_one({"_id": 1}) is None  # back to before the restore
    # a later restore's dry run: the undo's banner goes
    at.button(key="restore_preview_btn").click().run()
    assert "Undone" not in texts(at, "success") and "Dry run" in texts(at, "markdown")


def test_a_refusal_of_the_core_is_one_error_and_no_undo_button(open_page, restored, db, root):
    store = LocalStore(root)
    safety = next(b for b in store.list_backups() if b.trigger == "safety")
    store.delete(safety.backup_id)  # the only safety backup is gone: nothing can be undone safely
    after_restore = docs(db, "Equipment")
    at = open_page()
    assert not at.exception, at.exception
    assert "no safety backup" in texts(at, "error")
    assert not [b for b in at.button if b.key == "restore_undo_btn"]
    assert docs(db, "Equipment") == after_restore


@pytest.mark.timeout(180)
def test_an_interrupted_restore_is_shown_so_and_can_be_undone(make_app, page_env, db, db_name, root, cli_env):
    from tests.test_undo import _kill_restore_after_first_swap

    for name in ("A", "B", "C"):
        db[name].insert_many([{"_id": i, "v": f"{name}{i}"} for i in range(5)])
    backup_id = create_backup(db, LocalStore(root), BackupOptions(user="tester")).backup_id
    for name in ("A", "B", "C"):
        db[name].update_one({"_id": 0}, {"$set": {"v": "edited"}})
    edited = {n: docs(db, n) for n in ("A", "B", "C")}
    _kill_restore_after_first_swap(cli_env, backup_id, "A,C")  # A swapped in, C not yet, then killed
    assert docs(db, "A") != edited["A"]
    at = run_page(make_app("admin"), PAGE)
    assert not at.exception, at.exception
    recent = frame_with(at, "safety backup")
    assert recent["state"].iloc[0].startswith("interrupted")
    assert "**interrupted**" in texts(at, "markdown")
    undo_latest(at, db_name)
    assert not at.exception, at.exception
    assert not at.error, texts(at, "error")
    assert {n: docs(db, n) for n in ("A", "B", "C")} == edited
