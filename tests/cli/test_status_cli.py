"""``status --json``: the contract keys (DESIGN.md section 7), with and without backups."""

from __future__ import annotations

import json

from backup_core.scheduler import ScheduleConfig, save_config


def test_status_without_backups(cli, db, root):
    db["Equipment"].insert_many([{"n": 1}, {"n": 2}])
    r = cli("status", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["database"] == db.name
    assert out["embedded"] is False  # the tests talk to the server through MONGODB_URI
    assert out["collections"] == {"Equipment": {"count": 2}}
    assert out["last_backup"] is None
    sched = out["scheduler"]
    assert sched["active"] is False and sched["interval_hours"] == 1.0
    assert sched["next_run"] is None and sched["last_run"] is None
    assert out["storage"] == {"url": str(root), "encrypted": False, "key_fingerprint": None, "mirror": None}
    from backup_core import codec

    assert out["codec"] == codec.accelerator() and set(out["codec"]) == {"compiled", "reason"}


def test_status_says_where_and_how_backups_are_stored(cli, db, root, tmp_path):
    key = tmp_path / "backup.key"
    assert cli("keygen", "--out", str(key)).returncode == 0
    r = cli("--key-file", str(key), "status")
    assert r.returncode == 0, r.stderr
    from backup_core import codec
    from backup_core.store.crypto import load_key_file

    fingerprint = load_key_file(key).fingerprint
    assert f"backups stored in {root}; new backups encrypted (key {fingerprint})" in r.stdout
    assert f"codec: {codec.accelerator()['reason']}" in r.stdout


def test_status_after_backup_and_saved_interval(cli, db, root, settings):
    db["Equipment"].insert_one({"n": 1})
    db["Equipment_select_options"].insert_many([{"k": "a"}, {"k": "b"}, {"k": "c"}])
    backup = cli("backup", "--json")
    assert backup.returncode == 0, backup.stderr
    backup_id = json.loads(backup.stdout)["backup_id"]
    save_config(settings, ScheduleConfig(interval_hours=6))
    r = cli("status", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["collections"] == {"Equipment": {"count": 1}, "Equipment_select_options": {"count": 3}}
    last = out["last_backup"]
    assert last["backup_id"] == backup_id and last["trigger"] == "manual"
    assert last["created_at"].endswith("Z") and 0 <= last["age"] < 120
    assert out["scheduler"]["interval_hours"] == 6.0
    text = cli("status")
    assert text.returncode == 0 and backup_id in text.stdout and "scheduler: not running" in text.stdout


def test_status_reports_unreachable_database_with_backup_side(cli_env, root):
    from tests.conftest import run_cli
    env = dict(cli_env, MONGODB_URI="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300&connectTimeoutMS=300")
    r = run_cli(env, "status", "--json")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["scheduler"]["active"] is False and out["last_backup"] is None
