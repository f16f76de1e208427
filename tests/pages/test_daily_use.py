"""What a new admin tripped over in the dashboard (issue 21), each through AppTest."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.operation import operation
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import Keyring, LocalStore
from backup_core.store.crypto import generate_key_file
from tests.pages.conftest import frame_with, make_backup, run_page, texts, undo_latest
from tests.pages.test_home import _age_backup

RESTORE, BROWSE, AUDIT, AUTO = ("pages/2_Restore.py", "pages/4_Browse_Backups.py", "pages/5_Audit_Log.py",
                                "pages/3_Auto_Backup.py")


def _encrypted_newest(db, root, tmp_path) -> tuple[str, str, str]:
    """A plain backup, then a newer one encrypted with a key the dashboard does not have."""
    plain = _age_backup(LocalStore(root), make_backup(db, root).backup_id, hours=2)
    key = generate_key_file(tmp_path / "other.key")
    locked = create_backup(db, LocalStore(root, Keyring(key)), BackupOptions(user="t")).backup_id
    return plain, locked, key.fingerprint


def test_every_view_lists_a_backup_whose_key_is_missing_in_time_order(seeded, make_app, root, tmp_path):
    plain, locked, fp = _encrypted_newest(seeded, root, tmp_path)
    at = run_page(make_app("admin"))  # Home
    assert not at.exception, at.exception
    assert next(m for m in at.metric if m.label == "Last backup").help == locked
    body = texts(at)
    assert f"`{locked}`" in body and fp in body and "does not have" in body
    assert any(fp in w.value and "not configured" in w.value for w in at.warning)
    at.switch_page(BROWSE)
    at.run()
    assert not at.exception, at.exception
    listed = frame_with(at, "backup")
    assert listed["backup"].tolist() == [locked, plain]  # newest first, both (the same day here or not)
    assert listed["trigger"].tolist()[0] == "locked"
    assert listed["encrypted"].tolist()[0] == f"key {fp} (not configured)"
    at.switch_page(AUTO)
    at.run()
    assert not at.exception, at.exception
    policy = frame_with(at, "decision")  # the clean-up preview: in its place, left alone, and why
    assert policy["backup"].tolist() == [locked, plain]
    assert policy["decision"].tolist()[0] == "left alone" and fp in policy["why"].tolist()[0]


def test_compare_says_missing_and_null_never_a_blank(page_env, make_app, db, root):
    db["Equipment"].insert_many([{"_id": 1, "name": "a", "x": None, "arr": [1, 2, 3]},
                                 {"_id": 2, "name": "b", "y": 5}])
    make_backup(db, root)
    db["Equipment"].update_one({"_id": 1}, {"$unset": {"x": ""}, "$set": {"arr": [1, 2]}})
    db["Equipment"].update_one({"_id": 2}, {"$set": {"y": None}})
    at = run_page(make_app("admin"), RESTORE)
    at.button(key="restore_compare_btn").click().run()
    assert not at.exception, at.exception
    rows = frame_with(at, "field")
    values = {(k, f): (b, l) for k, f, b, l in zip(rows["key"], rows["field"], rows["backup"], rows["live"])}
    assert values[("1", "x")] == ("null", "(missing)")
    assert values[("1", "arr.2")] == ("3 (int)", "(missing)")
    assert values[("2", "y")] == ("5 (int)", "null")
    assert "" not in set(rows["backup"]) | set(rows["live"])


def test_one_result_on_screen_at_a_time(page_env, make_app, db, root, db_name):
    db["Equipment"].insert_many([{"_id": i, "name": f"n{i}"} for i in range(5)])
    make_backup(db, root)
    db["Equipment"].delete_one({"_id": 1})
    at = run_page(make_app("admin"), RESTORE)
    at.text_input(key="restore_confirm_text").set_value(db_name).run()
    at.button(key="restore_run_btn").click().run()
    undo_latest(at, db_name)
    assert not at.exception, at.exception
    assert "Undone" in texts(at)
    at.button(key="restore_preview_btn").click().run()  # a later dry run: the undo's banner is history
    assert not at.exception, at.exception
    assert "Undone" not in texts(at) and "Restored backup" not in texts(at)
    assert "Dry run" in texts(at)


def test_a_result_goes_when_a_later_action_fails(page_env, make_app, db, root, monkeypatch):
    from backup_core import backup
    from backup_core.errors import StorageError
    from webui.sections import create

    db["Equipment"].insert_many([{"_id": i} for i in range(3)])
    at = run_page(make_app("admin"), "pages/1_Create_Backup.py")
    at.multiselect(key="create_collections").set_value([])
    at.button(key="create_submit").click().run()
    assert "at least one collection" in texts(at)
    at.multiselect(key="create_collections").set_value(["Equipment"])
    at.button(key="create_submit").click().run()
    assert not at.exception, at.exception
    assert "at least one collection" not in texts(at) and "created in" in texts(at)

    def full(*a, **kw):
        raise StorageError("cannot write backup: disk full")

    monkeypatch.setattr(create, "create_backup", full)
    monkeypatch.setattr(backup, "create_backup", full)
    at.button(key="create_submit").click().run()
    assert not at.exception, at.exception
    assert "disk full" in texts(at)
    assert "created in" not in texts(at)  # the earlier success is not shown under the failure


def test_safety_backups_do_not_crowd_out_real_ones(page_env, make_app, db, root):
    db["Equipment"].insert_many([{"_id": i} for i in range(3)])
    manual = make_backup(db, root).backup_id
    time.sleep(1.1)
    safety = restore_backup(db, LocalStore(root), manual, RestoreOptions(mode="replace", confirmed=True,
                                                                          user="t")).safety_backup_id
    assert safety and safety != manual
    at = run_page(make_app("admin"))
    assert next(m for m in at.metric if m.label == "Last backup").help == manual
    at.switch_page(BROWSE)
    at.run()
    assert at.selectbox(key="browse_backup").value == manual  # the first choice is a real backup
    at.multiselect(key="browse_triggers").set_value(["manual"]).run()
    assert "1 safety backup (taken by restores before they changed data) not listed" in texts(at)


def test_charts_of_backups_minutes_apart_spread_over_the_axis(page_env, make_app, db, root):
    db["Equipment"].insert_many([{"_id": i, "v": "x" * 50} for i in range(20)])
    store = LocalStore(root)
    first = _age_backup(store, make_backup(db, root).backup_id, hours=4 / 60)
    db["Equipment"].insert_one({"_id": 99, "v": "new"})
    _age_backup(store, make_backup(db, root).backup_id, hours=2 / 60)
    make_backup(db, root)
    at = run_page(make_app("viewer"))
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    lo, hi = (datetime.fromisoformat(v) for v in specs[0]["layer"][0]["encoding"]["x"]["scale"]["domain"])
    assert hi - lo < timedelta(minutes=10)  # four minutes of backups: not an hour-wide axis
    from webui.charts import LOGICAL, STORED, storage_frame

    frame = storage_frame(store.list_backups(), timezone.utc)
    for series in (STORED, LOGICAL):
        kb = frame[frame["series"] == series]["kb"].tolist()
        assert kb == sorted(kb) and len(kb) == 3  # a total after each backup: it only grows, no zig-zag
    assert frame["backup"].tolist()[:2] == [first, first]


def test_auto_backup_says_who_runs_the_backups_without_lease_jargon(page_env, make_app, db, settings, services,
                                                                    monkeypatch):
    from dataclasses import replace

    from backup_core.scheduler import SchedulerService

    monkeypatch.setenv("BACKUP_SCHEDULER", "on")
    svc = SchedulerService(replace(settings, backup_root=page_env["root"]), interval=timedelta(hours=1),
                           lease_seconds=5)
    services.append(svc)
    svc.start()
    assert svc.is_active
    at = run_page(make_app("admin"), AUTO)
    assert not at.exception, at.exception
    body = texts(at)
    assert "This dashboard takes the scheduled backups" in body
    assert "fencing token" not in body and svc.id not in body and "Scheduler owner" not in body
    assert next(m for m in at.metric if m.label == "Scheduler").value == "active"


def test_the_audit_log_shows_one_row_per_operation(page_env, make_app, root):
    store = LocalStore(root)
    with operation(store, "backup", user="ann") as op:
        op.note(backup_id="20261124T000000Z")
    with operation(store, "copy", user="ann"):
        pass
    audit.record(root, user="bob", action="drill", outcome="ok")
    at = run_page(make_app("viewer"), AUDIT)
    table = frame_with(at, "action")
    assert table["action"].tolist() == ["drill", "copy", "backup"]  # not "started" and "ok" twice
    assert table["outcome"].tolist() == ["ok", "ok", "ok"]
    assert {"copy", "drill", "backup"} <= set(at.selectbox(key="audit_action").options)
    assert "Note the head" not in texts(at)
    at.selectbox(key="audit_entry").set_value(2).run()  # the backup: its outcome is entry 2, its start 1
    shown = at.code[0].value
    assert shown.count("action: backup") == 2 and "outcome: started" in shown and "outcome: ok" in shown


def test_the_login_page_starts_the_embedded_server_in_the_background(page_env, make_app, monkeypatch, tmp_path):
    from backup_core import embedded

    data_dir = tmp_path / "warm-data"
    monkeypatch.delenv("MONGODB_URI")
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(data_dir))
    at = run_page(make_app(role=None))
    assert not at.exception, at.exception
    assert at.text_input(key="login_user")  # the login page shows at once ...
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (embedded.read_server_file(data_dir) or {}).get("uri"):
            time.sleep(0.2)
        info = embedded.read_server_file(data_dir)
        assert info and embedded.ping(info["uri"]), "the embedded server was not started in the background"
    finally:
        info = embedded.read_server_file(data_dir)
        if info and info.get("pid"):
            import os
            import signal

            try:
                os.kill(info["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_a_chosen_backup_stays_chosen_while_its_age_changes(page_env, make_app, db, root):
    db["Equipment"].insert_many([{"_id": i} for i in range(3)])
    store = LocalStore(root)
    older = _age_backup(store, make_backup(db, root).backup_id, hours=3)
    # 58.5 s old: its age in words changes from "just now" to "1 min ago" while the page is open
    chosen = _age_backup(store, make_backup(db, root).backup_id, hours=58.5 / 3600)
    at = run_page(make_app("admin"), RESTORE)
    at.selectbox(key="restore_backup").set_value(chosen).run()
    assert not at.exception, at.exception
    created = store.get(chosen).created
    time.sleep(max(0.0, 61 - (datetime.now(timezone.utc) - created).total_seconds()))
    at.button(key="restore_compare_btn").click().run()
    assert not at.exception, at.exception
    assert at.selectbox(key="restore_backup").value == chosen and older != chosen
    assert all("ago" not in o and "just now" not in o for o in at.selectbox(key="restore_backup").options)
