"""Audit Log page: newest first, filters by action, user, outcome and text."""

from __future__ import annotations

from backup_core import audit
from tests.pages.conftest import frame_with, run_page

PAGE = "pages/5_Audit_Log.py"


def _seed(root):
    audit.record(root, user="ann", action="backup", backup_id="20261101T000000Z")
    audit.record(root, user="bob", action="login", outcome="error", reason="wrong password")
    audit.record(root, user="ann", action="restore", backup_id="20261101T000000Z", mode="merge")
    audit.record(root, user="ann", action="delete", backup_id="20261102T000000Z")


def test_newest_first(page_env, make_app, root):
    _seed(root)
    at = run_page(make_app("viewer"), PAGE)
    assert not at.exception
    table = frame_with(at, "action")
    assert table["action"].tolist() == ["delete", "restore", "login", "backup"]
    assert "wrong password" in table["details"].tolist()[2]


def test_filters(page_env, make_app, root):
    _seed(root)
    at = run_page(make_app("admin"), PAGE)
    at.selectbox(key="audit_action").set_value("backup")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["backup"]
    at.selectbox(key="audit_action").set_value("")
    at.text_input(key="audit_user").input("ann")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["delete", "restore", "backup"]
    at.text_input(key="audit_user").input("")
    at.selectbox(key="audit_outcome").set_value("error")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "user")["user"].tolist() == ["bob"]
    at.selectbox(key="audit_outcome").set_value("")
    at.text_input(key="audit_text").input("MERGE")
    at.button(key="audit_submit").click().run()
    assert frame_with(at, "action")["action"].tolist() == ["restore"]
    at.text_input(key="audit_text").input("nothing like this")
    at.button(key="audit_submit").click().run()
    assert not at.exception
    assert any("No audit entry matches" in i.value for i in at.info)


def test_empty_log(page_env, make_app):
    at = run_page(make_app("admin"), PAGE)
    assert not at.exception
    assert any("empty" in i.value for i in at.info)


def test_shows_where_the_chain_breaks(page_env, make_app, root):
    _seed(root)
    path = audit.audit_path(root)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"wrong password", b"right password")
    path.write_bytes(b"".join(lines))
    at = run_page(make_app("viewer"), PAGE)
    assert not at.exception
    assert any("tampered" in e.value and "line 2" in e.value for e in at.error)
    outcome = dict(zip(frame_with(at, "action")["action"], frame_with(at, "action")["outcome"]))
    assert outcome["login"].endswith("(chain broken)") and outcome["backup"] == "ok"


def test_show_at_most_is_honoured(page_env, make_app, root):
    for i in range(30):
        audit.record(root, user="ann", action="backup", n=i)
    at = run_page(make_app("viewer"), PAGE)
    at.number_input(key="audit_limit").set_value(12)
    at.button(key="audit_submit").click().run()
    assert len(frame_with(at, "action")) == 12
    assert any("12 entries" in c.value for c in at.caption)


def test_details_are_readable(page_env, make_app, root):
    audit.record(root, user="ann", action="restore", counts={"Equipment": {"inserted": 3}}, mode="merge")
    at = run_page(make_app("viewer"), PAGE)
    details = frame_with(at, "details")["details"].tolist()[0]
    assert "mode: merge" in details and "{" not in details.split("counts:")[0]


def test_times_are_local_with_the_zone_stated(page_env, make_app, root, monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        audit.record(root, user="ann", action="backup")
        at_utc = audit.read(root, 1)[0]["at"]
        at = run_page(make_app("viewer"), PAGE)
        table = frame_with(at, "action")
        column = next(c for c in table.columns if c.startswith("time ("))
        assert column in ("time (UTC-05:00 (EST))", "time (UTC-04:00 (EDT))")
        from datetime import datetime
        from zoneinfo import ZoneInfo

        local = datetime.fromisoformat(at_utc.replace("Z", "+00:00")).astimezone(ZoneInfo("America/New_York"))
        assert table[column].tolist() == [local.strftime("%Y-%m-%d %H:%M:%S")]
        assert "at" not in table.columns  # no raw UTC strings in the table
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_chosen_entry_is_shown_whole_and_readable(page_env, make_app, root):
    long_error = "disk full while writing Equipment.csv: " + "x" * 600 + " END"
    audit.record(root, user="ann", action="backup", outcome="error", error=long_error,
                 counts={"Equipment": {"inserted": 3, "updated": 1}}, collections=["Equipment", "設備"])
    audit.record(root, user="bob", action="login")
    at = run_page(make_app("viewer"), PAGE)
    picker = at.selectbox(key="audit_entry")
    assert picker.value == 2  # the newest by default
    picker.set_value(1).run()
    assert not at.exception, at.exception
    (shown,) = [c.value for c in at.code]
    assert f"error: {long_error}" in shown  # nothing cut off
    assert "counts:\n  Equipment:\n    inserted: 3\n    updated: 1" in shown  # nested values indented
    assert "collections: Equipment, 設備" in shown and "{" not in shown
    assert "user: ann" in shown and "seq: 1" in shown and "(UTC)" in shown
    assert any("Select a row to see the whole entry" in c.value for c in at.caption)


def test_a_log_cut_below_a_backups_copy_of_its_head_is_shown(page_env, make_app, root, db):
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.store import LocalStore

    _seed(root)
    db["Equipment"].insert_one({"_id": 1})
    create_backup(db, LocalStore(root), BackupOptions(user="ann"))  # its manifest keeps the log's head
    path = audit.audit_path(root)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:3]))  # a valid, shorter chain
    at = run_page(make_app("viewer"), PAGE)
    assert not at.exception
    assert any("cut, emptied or rewritten" in e.value and "cut off its end" in e.value for e in at.error)
