"""The CLI contract (DESIGN.md section 7) for compare, restore and audit."""

from __future__ import annotations

import json

import pytest

from backup_core.mongoutil import raw_collection
from backup_core.config import meta_name

from ..conftest import run_cli
from tests.cli import one_json as _json


@pytest.fixture
def changed(db, cli):
    """A backup of two collections, then live changes: one deleted, one changed, one added."""
    db.Equipment.insert_many([{"_id": i, "asset_id": f"EQ-{i:03d}", "price": i * 1.5} for i in range(8)])
    db.Equipment_select_options.insert_many([{"_id": i, "value": f"v{i}"} for i in range(3)])
    bid = _json(cli("backup", "--json"))["backup_id"]
    db.Equipment.delete_one({"_id": 0})
    db.Equipment.update_one({"_id": 1}, {"$set": {"price": "free"}})
    db.Equipment.insert_one({"_id": 50, "asset_id": "EQ-050"})
    return bid


def _live(db, name):
    return [bytes(d.raw) for d in raw_collection(db, name).find({}, sort=[("_id", 1)])]


def test_compare_json_and_text(cli, changed):
    out = _json(cli("compare", changed, "--json"))
    no_change = {"added": [], "removed": [], "changed": []}
    assert out["collections"]["Equipment"] == {"only_in_backup": 1, "only_in_live": 1, "changed": 1,
                                               "identical": 6, "indexes": no_change, "options": no_change,
                                               "warnings": []}
    assert out["collections"]["Equipment_select_options"]["identical"] == 3
    by_key = _json(cli("compare", changed, "--collections", "Equipment", "--key", "asset_id", "--json"))
    assert list(by_key["collections"]) == ["Equipment"] and by_key["key"] == "asset_id"
    text = cli("compare", changed, "--show", "5")
    assert text.returncode == 0 and "price" in text.stdout and "string" in text.stdout


def test_restore_needs_yes_or_dry_run(cli, db, changed):
    before = _live(db, "Equipment")
    proc = cli("restore", changed, "--mode", "replace")
    assert proc.returncode != 0
    assert "--dry-run" in proc.stderr and "--yes" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _live(db, "Equipment") == before
    listed = _json(cli("list", "--json"))["backups"]
    assert len(listed) == 1  # no safety backup either


def test_dry_run_then_restore_then_undo(cli, db, changed):
    before = _live(db, "Equipment")
    dry = _json(cli("restore", changed, "--mode", "replace", "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["safety_backup_id"] is None
    assert {k: dry["collections"]["Equipment"][k] for k in ("inserted", "updated", "deleted", "unchanged")} == \
        {"inserted": 1, "updated": 1, "deleted": 1, "unchanged": 6}
    assert _live(db, "Equipment") == before
    real = _json(cli("restore", changed, "--mode", "replace", "--yes", "--json"))
    assert real["dry_run"] is False and real["collections"] == dry["collections"]
    safety = real["safety_backup_id"]
    listed = {b["backup_id"]: b for b in _json(cli("list", "--json"))["backups"]}
    assert listed[safety]["trigger"] == "safety"
    assert _json(cli("compare", changed, "--json"))["collections"]["Equipment"]["changed"] == 0
    _json(cli("restore", safety, "--mode", "replace", "--yes", "--json"))
    assert _live(db, "Equipment") == before


def test_merge_live_wins_reports_skipped(cli, db, changed):
    out = _json(cli("restore", changed, "--mode", "merge", "--strategy", "live-wins", "--yes", "--json"))
    eq = out["collections"]["Equipment"]
    assert (eq["inserted"], eq["updated"], eq["skipped"], eq["unchanged"], eq["deleted"]) == (1, 0, 1, 6, 0)
    assert db.Equipment.find_one({"_id": 1})["price"] == "free" and db.Equipment.find_one({"_id": 50})


def test_restore_chosen_ids(cli, db, changed):
    out = _json(cli("restore", changed, "--mode", "replace", "--collections", "Equipment",
                    "--ids", "0,1", "--yes", "--json"))
    assert {k: out["collections"]["Equipment"][k] for k in ("inserted", "updated", "deleted")} == \
        {"inserted": 1, "updated": 1, "deleted": 0}
    assert db.Equipment.find_one({"_id": 50}) and db.Equipment.find_one({"_id": 1})["price"] == 1.5


def test_refusals_exit_non_zero(cli, db, changed):
    db.Equipment.insert_one({"_id": 60, "asset_id": "EQ-001"})  # asset_id no longer unique live
    proc = cli("restore", changed, "--mode", "merge", "--key", "asset_id", "--yes", "--json")
    assert proc.returncode == 8 and "not unique in live" in proc.stderr
    assert json.loads(proc.stdout)["ok"] is False
    proc = cli("restore", "20000101T000000Z", "--mode", "replace", "--yes")
    assert proc.returncode != 0 and "no backup" in proc.stderr
    proc = cli("restore", changed, "--mode", "sideways", "--yes")
    assert proc.returncode != 0


def test_restore_from_another_database_needs_flag(cli, cli_env, db, client, changed):
    other = dict(cli_env, MONGODB_DB=db.name + "_other")
    try:
        refused = run_cli(other, "restore", changed, "--mode", "replace", "--yes")
        assert refused.returncode != 0 and "--allow-other-db" in refused.stderr
        ok = _json(run_cli(other, "restore", changed, "--mode", "replace", "--yes", "--allow-other-db", "--json"))
        assert ok["collections"]["Equipment"]["inserted"] == 8
    finally:
        client.drop_database(db.name + "_other")
        client.drop_database(meta_name(db.name + "_other"))


def test_audit_json_newest_first(cli, changed):
    cli("restore", changed, "--mode", "replace")  # refused
    _json(cli("restore", changed, "--mode", "replace", "--yes", "--json"))
    entries = _json(cli("audit", "--json"))["entries"]
    assert entries[0]["action"] == "restore" and entries[0]["outcome"] == "ok"
    assert entries[0]["safety_backup_id"] and entries[0]["counts"]["Equipment"]["deleted"] == 1
    assert all({"at", "user", "action", "outcome"} <= set(e) for e in entries)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    restores = _json(cli("audit", "--action", "restore", "--limit", "5", "--json"))["entries"]
    # each restore is on the record twice: "started" before it does anything, then its outcome
    assert [e["outcome"] for e in restores] == ["ok", "started", "refused", "started"]
    assert restores[0]["op"] == restores[1]["op"] != restores[2]["op"] == restores[3]["op"]
    assert len(_json(cli("audit", "--limit", "1", "--json"))["entries"]) == 1
    assert cli("audit").returncode == 0


def test_restore_progress_only_on_a_terminal(cli, cli_env, db, changed):
    from tests.test_progress import run_cli_on_tty

    proc = cli("restore", changed, "--mode", "replace", "--dry-run", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    code, stdout, tty = run_cli_on_tty(cli_env, "restore", changed, "--mode", "replace", "--yes", "--json",
                                       "--jobs", "2")
    assert code == 0, tty
    assert json.loads(stdout)["collections"]["Equipment"]["inserted"] == 1
    # each phase on the one line: the comparison, the safety backup, the writes
    for phase in ("comparing backup and live data", "safety backup", "writing"):
        assert f"restore · {phase} · " in tty, tty
    assert tty.endswith("\r\x1b[K")
