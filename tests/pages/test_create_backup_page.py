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
    assert dict(zip(table["collection"], table["sha256"])) == {n: c.sha256[:16] + "…"
                                                               for n, c in info.collections.items()}
    # the whole hashes, one line per file as sha256sum prints them (the table's column would cut them off)
    assert at.code[0].value.splitlines() == [f"{c.sha256}  {c.file}" for c in info.collections.values()]
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
    assert any("needs the admin role" in i.value for i in at.info) and not at.error
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


def test_progress_shows_documents_done_of_total_rate_and_time_left():
    from webui.progress import CollectionProgress, duration_text

    now = {"t": 100.0}
    line = CollectionProgress("Equipment", 1000, clock=lambda: now["t"])
    assert line.waiting_text() == "Equipment: waiting (1,000 documents)"
    # the core counts its own steps (a backup: two per document); the text counts documents
    assert line.update(0, 2000) == "Equipment: 0 / 1,000 documents · estimating the time left"
    now["t"] = 102.0
    assert line.update(1000, 2000) == "Equipment: 500 / 1,000 documents · 250 documents/s · about 2.0 s left"
    now["t"] = 102.1
    assert line.update(1100, 2000) is None  # too soon to redraw
    now["t"] = 104.0
    assert line.update(2000, 2000) == "Equipment: 1,000 / 1,000 documents · 250 documents/s"
    now["t"] = 109.0  # other collections still running: this one's own time counts
    assert line.finished_text(1000) == "Equipment: 1,000 / 1,000 documents · done in 4.0 s · 250 documents/s"
    assert [duration_text(s) for s in (0.05, 3.21, 42, 185, 7440)] == \
        ["under 0.1 s", "3.2 s", "42 s", "3 min 5 s", "2 h 4 min"]


def test_backup_progress_on_the_page_counts_documents(seeded, make_app, root):
    import re

    at = run_page(make_app("admin"), PAGE)
    at.button(key="create_submit").click().run()
    assert not at.exception, at.exception
    lines = [p.proto.text for p in at.get("progress")]
    assert len(lines) == 2
    assert re.fullmatch(r"Equipment: 60 / 60 documents · done in .+ s( · [\d,]+ documents/s)?", lines[0]), lines
    assert lines[1].startswith("Equipment_select_options: 3 / 3 documents · done in ")
