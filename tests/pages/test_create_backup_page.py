"""Create Backup page: admins back up chosen collections and see the result; viewers are refused."""

from __future__ import annotations

from backup_core import audit
from backup_core.store import LocalStore
from tests.pages.conftest import frame_with, run_page, texts

PAGE = "pages/1_Create_Backup.py"


def test_create_backup_of_all_collections(seeded, make_app, root):
    at = run_page(make_app("admin", "ann"), PAGE)
    assert not at.exception
    assert at.multiselect(key="create_collections").value == ["Equipment", "Equipment_select_options"]
    at.button(key="create_submit").click().run()
    assert not at.exception, at.exception
    backups = LocalStore(root).list_backups()
    assert len(backups) == 1
    info = backups[0]
    assert {n: c.count for n, c in info.collections.items()} == {"Equipment": 60, "Equipment_select_options": 3}
    assert any(info.backup_id in s.value for s in at.success)
    table = frame_with(at, "sha256")
    assert dict(zip(table["collection"], table["sha256"])) == {n: c.sha256 for n, c in info.collections.items()}
    assert "Documents: 63" in texts(at)
    # progress bars reached the end, one per collection
    assert [p.value for p in at.get("progress")] == [100, 100]
    entry = audit.read(root, 1, audit.AuditFilter(action="backup"))[0]
    assert entry["user"] == "ann" and entry["backup_id"] == info.backup_id


def test_create_backup_of_one_compressed_collection(seeded, make_app, root):
    at = run_page(make_app("admin"), PAGE)
    at.multiselect(key="create_collections").set_value(["Equipment_select_options"])
    at.checkbox(key="create_compress").check()
    at.button(key="create_submit").click().run()
    assert not at.exception
    info = LocalStore(root).list_backups()[0]
    assert list(info.collections) == ["Equipment_select_options"]
    assert info.collections["Equipment_select_options"].file.endswith(".csv.gz")


def test_no_collection_chosen_is_an_error_not_a_backup(seeded, make_app, root):
    at = run_page(make_app("admin"), PAGE)
    at.multiselect(key="create_collections").set_value([])
    at.button(key="create_submit").click().run()
    assert not at.exception
    assert any("at least one collection" in e.value for e in at.error)
    assert LocalStore(root).list_backups() == []


def test_viewer_is_refused(seeded, make_app, root):
    at = run_page(make_app("viewer", "vic"), PAGE)
    assert not at.exception
    assert any("needs the admin role" in e.value for e in at.error)
    assert not at.button and not at.multiselect
    assert LocalStore(root).list_backups() == []


def test_backup_error_is_shown_without_traceback(seeded, make_app, root):
    (root / "monday").write_text("not a folder")  # the store cannot create its day folder
    (root / "tuesday").write_text("x"); (root / "wednesday").write_text("x"); (root / "thursday").write_text("x")
    (root / "friday").write_text("x"); (root / "saturday").write_text("x"); (root / "sunday").write_text("x")
    at = run_page(make_app("admin"), PAGE)
    at.button(key="create_submit").click().run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "cannot write" in errors and "Traceback" not in errors
