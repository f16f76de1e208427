"""Browse Backups page: listing by day, verify, document search and paging, downloads, delete."""

from __future__ import annotations

from backup_core import audit
from backup_core.store import LocalStore
from tests.pages.conftest import frame_with, make_backup, run_page, texts

PAGE = "pages/4_Browse_Backups.py"


def _open(make_app, role="admin"):
    at = run_page(make_app(role), PAGE)
    assert not at.exception, at.exception
    return at


def test_lists_backups_by_day_with_collections(seeded, make_app, root):
    info = LocalStore(root).get(make_backup(seeded, root).backup_id)
    at = _open(make_app, "viewer")
    assert [t.label for t in at.tabs] == [f"{info.day.capitalize()} (1)"]
    assert frame_with(at, "backup")["backup"].tolist() == [info.backup_id]
    colls = frame_with(at, "file")
    assert dict(zip(colls["collection"], colls["documents"])) == {"Equipment": 60, "Equipment_select_options": 3}
    assert at.selectbox(key="browse_backup").value == info.backup_id
    assert len(at.get("download_button")) == 2  # the collection's CSV and the zip


def test_no_backups(seeded, make_app):
    at = _open(make_app)
    assert any("no backups" in i.value for i in at.info)


def test_verify_ok_and_tampered(seeded, make_app, root):
    info = LocalStore(root).get(make_backup(seeded, root).backup_id)
    at = _open(make_app, "viewer")
    at.button(key="browse_verify").click().run()
    assert not at.exception
    assert any("Verified" in s.value for s in at.success)
    assert set(frame_with(at, "verify")["verify"]) == {"ok"}
    path = LocalStore(root).folder(info.backup_id) / info.collections["Equipment"].file
    path.write_bytes(path.read_bytes().replace(b"Pump 1", b"Pump 9", 1))
    at.button(key="browse_verify").click().run()
    assert not at.exception
    assert any("does NOT verify" in e.value and "Equipment" in e.value for e in at.error)


def test_documents_paging(seeded, make_app, root):
    make_backup(seeded, root)
    at = _open(make_app)
    assert at.selectbox(key="browse_doc_collection").value == "Equipment"
    docs = frame_with(at, "serial")
    assert docs["serial"].tolist() == [f"SN-{i:04d}" for i in range(25)]
    assert at.button(key="browse_prev").disabled
    at.button(key="browse_next").click().run()
    assert frame_with(at, "serial")["serial"].tolist()[0] == "SN-0025"
    at.button(key="browse_next").click().run()
    assert frame_with(at, "serial")["serial"].tolist() == [f"SN-{i:04d}" for i in range(50, 60)]
    assert at.button(key="browse_next").disabled
    at.button(key="browse_prev").click().run()
    assert frame_with(at, "serial")["serial"].tolist()[0] == "SN-0025"
    # a new search starts again at the first page
    at.text_input(key="browse_search").input("zenith").run()
    serials = frame_with(at, "serial")["serial"].tolist()
    assert serials == [f"SN-{i:04d}" for i in range(0, 60, 3)]  # nested specs.maker, case-insensitive
    at.text_input(key="browse_search").input("SN-0042").run()
    assert frame_with(at, "serial")["serial"].tolist() == ["SN-0042"]
    at.text_input(key="browse_search").input("no such thing").run()
    assert any("No document matches" in i.value for i in at.info)


def test_documents_as_json(seeded, make_app, root):
    make_backup(seeded, root)
    at = _open(make_app)
    at.selectbox(key="browse_doc_collection").set_value("Equipment_select_options").run()
    at.toggle(key="browse_as_json").set_value(True).run()
    assert not at.exception
    assert len(at.json) == 3


def test_delete_needs_the_exact_id_and_is_audited(seeded, make_app, root):
    backup_id = make_backup(seeded, root).backup_id
    at = _open(make_app)
    at.text_input(key="browse_delete_confirm").input("20990101T000000Z")
    at.button(key="browse_delete").click().run()
    assert any("does not match" in e.value for e in at.error)
    assert LocalStore(root).exists(backup_id)
    at.text_input(key="browse_delete_confirm").input(backup_id)
    at.button(key="browse_delete").click().run()
    assert not at.exception
    assert not LocalStore(root).exists(backup_id)
    assert any(backup_id in s.value and "deleted" in s.value for s in at.success)
    entry = audit.read(root, 1, audit.AuditFilter(action="delete"))[0]
    assert entry["backup_id"] == backup_id and entry["user"] == "admin" and entry["outcome"] == "ok"


def test_viewer_cannot_delete(seeded, make_app, root):
    make_backup(seeded, root)
    at = _open(make_app, "viewer")
    assert not [b for b in at.button if b.key == "browse_delete"]  # no delete control at all
    assert not [e for e in at.expander if e.label == "Delete this backup"]
    assert len(LocalStore(root).list_backups()) == 1


def test_unreadable_backup_folder_is_reported(seeded, make_app, root):
    info = LocalStore(root).get(make_backup(seeded, root).backup_id)
    broken = LocalStore(root).folder(info.backup_id).parent / "20200101T000000Z"
    broken.mkdir()
    (broken / "manifest.json").write_text("{}")  # damaged: a folder that claims to be a backup and is not
    at = _open(make_app)
    body = texts(at)
    assert "1 folder in the backup root is not a readable backup" in body
    assert "folder(s)" not in body and "1 backups" not in body


def test_a_backup_with_no_collections_is_shown_not_a_crash(seeded, make_app, root):
    from backup_core.backup import BackupOptions, create_backup

    # what a restore into a missing collection leaves: a safety backup that only records an absence
    create_backup(seeded, LocalStore(root), BackupOptions(collections=[], absent=["Gone"], trigger="safety",
                                                          user="t"))
    at = _open(make_app, "admin")
    assert not at.exception
    assert any("holds no collections" in i.value and "Gone" in i.value for i in at.info)
    assert "1 backup in" in texts(at)


def test_json_view_labels_each_document(seeded, make_app, root):
    make_backup(seeded, root)
    at = _open(make_app)
    at.toggle(key="browse_as_json").set_value(True).run()
    assert not at.exception
    labels = [e.label for e in at.expander if e.label[:1].isdigit()]
    assert labels and labels[0].startswith("1. ") and "name: Pump" in labels[0]


def test_filter_by_trigger_and_the_storage_picture(seeded, make_app, root):
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.restore import RestoreOptions, restore_backup

    store = LocalStore(root)
    first = make_backup(seeded, root).backup_id
    create_backup(seeded, store, BackupOptions(user="scheduler", trigger="scheduled"))
    res = restore_backup(seeded, store, first, RestoreOptions(mode="replace", confirmed=True, user="t"))
    at = _open(make_app, "viewer")
    listed = frame_with(at, "backup")
    assert len(listed) == 3
    by_id = dict(zip(listed["backup"], listed["trigger"]))
    assert by_id[res.safety_backup_id] == f"safety (restore of {first})"
    # unchanged data is shared: the later backups store (almost) nothing of their own
    from webui.common import human_bytes

    stored = dict(zip(listed["backup"], listed["stored"]))
    infos = {b.backup_id: b for b in store.list_backups()}  # (listing knows which data is shared)
    assert stored == {b: human_bytes(i.stored_bytes) for b, i in infos.items()}
    assert all(infos[b].stored_bytes < 0.5 * infos[first].stored_bytes for b in by_id if b != first)  # manifests
    assert set(frame_with(at, "actually stored")["collection"]) == {"Equipment", "Equipment_select_options"}

    at.multiselect(key="browse_triggers").set_value(["safety"]).run()
    assert not at.exception, at.exception
    assert frame_with(at, "backup")["backup"].tolist() == [res.safety_backup_id]
    assert at.selectbox(key="browse_backup").value == res.safety_backup_id
    colls = frame_with(at, "file")
    assert set(colls["stored"]) == {f"shared with {first}"}
    at.multiselect(key="browse_triggers").set_value([]).run()
    assert "No backup of the chosen kinds" in texts(at)


def test_an_incremental_backup_shows_what_changed_since_the_previous_one(seeded, make_app, root):
    make_backup(seeded, root)
    first, gone = [d["_id"] for d in seeded["Equipment"].find({}, {"_id": 1}).sort("_id", 1).limit(2)]
    seeded["Equipment"].update_one({"_id": first}, {"$set": {"status": "moved to bay 7"}})
    seeded["Equipment"].delete_one({"_id": gone})
    newest = LocalStore(root).get(make_backup(seeded, root).backup_id)
    assert newest.collection("Equipment").incremental and not newest.collection("Equipment_select_options").incremental
    at = _open(make_app, "viewer")
    assert at.selectbox(key="browse_backup").value == newest.backup_id
    assert "Changes since the previous backup" in [h.value for h in at.subheader]
    assert at.selectbox(key="browse_changes_collection").options == ["Equipment"]
    body = texts(at)
    assert "1 new or changed, 1 deleted" in body and str(gone) in body
    changed = next(df.value for df in at.dataframe if "status" in df.value.columns and len(df.value) == 1)
    assert changed["status"].tolist() == ["moved to bay 7"]
