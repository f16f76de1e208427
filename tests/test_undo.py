"""Undo: the latest restore (finished or interrupted), only its collections, only its genuine safety backup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from backup_core import audit
from backup_core.backup import BackupOptions, create_backup
from backup_core.errors import RestoreRefused
from backup_core.restore import RestoreOptions, restore_backup
from backup_core.store import MANIFEST, LocalStore, manifest_hash
from backup_core.undo import UndoOptions, find_latest, plan_undo, recent_restores, undo

from .cli import one_json
from .conftest import ROOT, run_cli


def docs(db, name) -> list[dict]:
    return list(db[name].find({}, sort=[("_id", 1)]))


def state(db) -> dict:
    return {n: docs(db, n) for n in sorted(db.list_collection_names())}


@pytest.fixture
def abc(db, store):
    """Collections A, B, C and a manual backup M of them."""
    for name in ("A", "B", "C"):
        db[name].insert_many([{"_id": i, "v": f"{name}{i}"} for i in range(5)])
    return create_backup(db, store, BackupOptions(user="ann")).backup_id


def _restore(db, store, backup_id, collections=None):
    return restore_backup(db, store, backup_id, RestoreOptions(confirmed=True, user="ann", collections=collections))


def _edit(db, names, tag):
    for n in names:
        db[n].update_one({"_id": 0}, {"$set": {"v": tag}})
        db[n].insert_one({"_id": 100, "v": tag})


def _kill_restore_after_first_swap(cli_env, backup_id, collections):
    env = dict(cli_env, BACKUP_CORE_TEST_PAUSE="swap", BACKUP_CORE_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "restore", backup_id, "--mode", "replace",
                             "--collections", collections, "--yes"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = proc.stderr.readline()
        assert "paused at swap" in line, line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.timeout(120)
def test_undo_after_an_interrupted_restore_puts_back_only_what_it_touched(db, store, abc, cli_env):
    _restore(db, store, abc)  # R1 finishes
    _edit(db, ["A", "B"], "edited after R1")
    edited = state(db)
    _kill_restore_after_first_swap(cli_env, abc, "A,C")  # R2: A swapped, C not yet, then killed
    assert docs(db, "A") != edited["A"] and docs(db, "C") == edited["C"]

    latest = find_latest(store, db.name)
    assert latest.state == "interrupted" and latest.backup_id == abc and sorted(latest.collections) == ["A", "C"]
    plan = one_json(run_cli(cli_env, "undo", "--dry-run", "--json"))
    assert plan["dry_run"] is True and sorted(plan["collections"]) == ["A", "C"]
    assert plan["undo_of"]["state"] == "interrupted" and plan["undo_of"]["op"] == latest.op
    assert plan["collections"]["A"]["inserted"] == 1 and plan["collections"]["A"]["updated"] == 1
    assert plan["collections"]["C"] == {**plan["collections"]["C"], "inserted": 0, "updated": 0, "deleted": 0}
    assert state(db) != edited  # the dry run changed nothing

    done = one_json(run_cli(cli_env, "undo", "--yes", "--json"))
    assert done["dry_run"] is False and done["collections"] == plan["collections"]  # the plan was exact
    assert state(db) == edited  # B keeps its edit: R2 never touched it
    entries = [e for e in audit.read(store, 30) if e["action"].startswith("undo")]
    assert [(e["action"], e["outcome"]) for e in entries[:4]] == [
        ("undo", "ok"), ("undo", "started"), ("undo_dry_run", "ok"), ("undo_dry_run", "started")]
    assert entries[0]["undo_of"] == latest.op


def test_a_finished_restore_is_undone_and_then_there_is_nothing_left_to_undo(db, store, abc):
    _edit(db, ["A"], "before the restore")
    before = state(db)
    _restore(db, store, abc, ["A"])
    res = undo(db, store, UndoOptions(confirmed=True, user="ann"))
    assert state(db) == before and list(res.result.collections) == ["A"]
    assert res.restore.state == "finished" and res.safety_backup_id  # the undo took its own safety backup
    with pytest.raises(RestoreRefused, match="already undone"):
        undo(db, store, UndoOptions(confirmed=True, user="ann"))
    rows = recent_restores(store, database=db.name)
    assert [(r.action, r.state) for r in rows] == [("undo", "finished"), ("restore", "finished")]
    assert rows[1].undone_by == rows[0].op and rows[1].undone_at


def test_the_dry_run_changes_nothing_and_an_unconfirmed_undo_is_refused(db, store, abc, cli):
    _edit(db, ["A"], "x")
    _restore(db, store, abc)
    after = state(db)
    plan = plan_undo(db, store, UndoOptions(user="ann"))
    assert plan.dry_run and plan.result.collections["A"].updated == 1 and plan.safety_backup_id is None
    with pytest.raises(RestoreRefused, match="not confirmed"):
        undo(db, store, UndoOptions(user="ann"))
    bad = cli("undo")
    assert bad.returncode == 8 and len(bad.stderr.strip().splitlines()) == 1 and "confirmation" in bad.stderr
    assert state(db) == after
    assert "would restore its safety backup" in cli("undo", "--dry-run").stdout


def test_a_forged_audit_entry_naming_an_old_manual_backup_is_refused(db, store, abc, cli):
    _restore(db, store, abc)
    _edit(db, ["A", "B", "C"], "work after the restore")
    after = state(db)
    # an attacker appends a well-chained "restore ok" naming the old manual backup as its safety backup
    store.audit_log().record(user="eve", action="restore", outcome="ok", op="f" * 16, database=db.name,
                             backup_id=abc, mode="replace", safety_backup_id=abc)
    with pytest.raises(RestoreRefused, match="not a genuine safety backup"):
        undo(db, store, UndoOptions(confirmed=True, user="ann"))
    proc = cli("undo", "--yes")
    assert proc.returncode == 8 and len(proc.stderr.strip().splitlines()) == 1
    assert "not a genuine safety backup" in proc.stderr
    assert state(db) == after


def test_a_manual_backup_never_passes_for_a_safety_backup(db, store, abc, root):
    """Even a manifest rewritten to trigger "safety" (hash recomputed) names no restore of the log."""
    _restore(db, store, abc)
    info = store.get(abc)
    path = root / info.day / abc / MANIFEST
    body = json.loads(path.read_text())
    body.update(trigger="safety", created_at="2099-01-01T00:00:00.000Z")  # pose as the newest safety backup
    body["manifest_sha256"] = manifest_hash(body)
    path.write_text(json.dumps(body))
    with pytest.raises(RestoreRefused, match="does not say which restore"):
        find_latest(store, db.name)


def test_a_replayed_entry_of_an_older_restore_cannot_make_undo_go_back_further(db, store, abc):
    _restore(db, store, abc, ["A"])  # R1
    _edit(db, ["A"], "between")
    first = find_latest(store, db.name)
    _restore(db, store, abc, ["A"])  # R2
    second = find_latest(store, db.name)
    assert second.op != first.op
    # replay R1's outcome entry at the end of the log: the newest safety backup still belongs to R2
    r1_ok = next(e for e in audit.read(store, None) if e.get("op") == first.op and e["outcome"] == "ok")
    store.audit_log().append({k: v for k, v in r1_ok.items() if k not in ("seq", "prev", "hash")})
    with pytest.raises(RestoreRefused, match="not a genuine safety backup"):
        find_latest(store, db.name)


def test_a_deleted_safety_backup_refuses_instead_of_undoing_an_older_restore(db, store, abc):
    _restore(db, store, abc, ["A"])
    _edit(db, ["A"], "between")
    res = _restore(db, store, abc, ["A"])
    store.delete(res.safety_backup_id)
    with pytest.raises(RestoreRefused, match="not a genuine safety backup"):
        find_latest(store, db.name)


def test_a_cut_audit_log_refuses(db, store, abc, root):
    _restore(db, store, abc)
    audit.audit_path(root).unlink()
    with pytest.raises(RestoreRefused, match="no record of the restore"):
        find_latest(store, db.name)


def test_nothing_to_undo(db, store, abc, cli):
    with pytest.raises(RestoreRefused, match="no restore of database"):
        find_latest(store, db.name)
    proc = cli("undo", "--dry-run", "--json")
    assert proc.returncode == 8 and json.loads(proc.stdout)["ok"] is False


def test_an_interrupted_undo_can_be_run_again(db, store, abc, cli_env):
    _edit(db, ["A", "B"], "before")
    before = state(db)
    _restore(db, store, abc)
    env = dict(cli_env, BACKUP_CORE_TEST_PAUSE="swap", BACKUP_CORE_TEST_PAUSE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-m", "backup_core", "undo", "--yes"], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert "paused at swap" in proc.stderr.readline()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    again = find_latest(store, db.name)
    assert again.action == "restore" and "did not finish" in (again.error or "")
    undo(db, store, UndoOptions(confirmed=True, user="ann"))
    assert state(db) == before


def test_undo_on_an_encrypted_store(db, tmp_path, abc):
    from backup_core.store.crypto import Keyring, generate_key_file

    keyed = LocalStore(tmp_path / "enc", Keyring(generate_key_file(tmp_path / "k.key")))
    bid = create_backup(db, keyed, BackupOptions(user="ann")).backup_id
    _edit(db, ["B"], "x")
    before = state(db)
    _restore(db, keyed, bid, ["B"])
    latest = find_latest(keyed, db.name)
    assert keyed.get(latest.safety_backup_id).encrypted
    undo(db, keyed, UndoOptions(confirmed=True, user="ann"))
    assert state(db) == before
