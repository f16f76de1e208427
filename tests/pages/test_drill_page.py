"""Restore drills on the dashboard: Drill now on Browse Backups (admins only) with its per-collection result,
each backup's last drill as a mark, and on Home the last proven restorable backup and failed drills."""

from __future__ import annotations

import pytest

from backup_core import drill_results
from backup_core.drill import DRILL_PREFIX
from backup_core.errors import RestoreRefused
from backup_core.status import drill_lines
from backup_core.store import LocalStore
from tests.pages.conftest import frame_with, make_backup, run_page, texts
from tests.store.conftest import tamper

PAGE = "pages/4_Browse_Backups.py"

pytestmark = pytest.mark.timeout(180)


def _browse(make_app, role="admin"):
    at = run_page(make_app(role), PAGE)
    assert not at.exception, at.exception
    return at


def _home(make_app, role="viewer"):
    at = run_page(make_app(role))
    assert not at.exception, at.exception
    return at


def _drill_now(at):
    at.button(key="browse_drill").click().run()
    assert not at.exception, at.exception
    return at


def _scratch_databases(client, db) -> list[str]:
    return [n for n in client.list_database_names() if n.startswith(f"{DRILL_PREFIX}{db.name}")]


def test_drill_now_passes_shows_the_result_and_home_shows_it_proven(seeded, make_app, root, client, settings):
    backup_id = make_backup(seeded, root).backup_id
    at = _browse(make_app)
    assert frame_with(at, "last drill")["last drill"].tolist() == [""]  # never drilled: blank
    assert "never been drilled" in texts(at)
    _drill_now(at)
    assert not at.error
    [passed] = [s.value for s in at.success]
    assert f"Restore drill of backup **{backup_id}** passed" in passed and "63 documents" in passed
    assert "was dropped" in passed
    table = frame_with(at, "what differed")
    assert table.columns.tolist() == ["collection", "documents", "ok", "seconds", "docs/s", "what differed"]
    assert dict(zip(table["collection"], table["documents"])) == {"Equipment": 60, "Equipment_select_options": 3}
    assert set(table["ok"]) == {"✓"} and set(table["what differed"]) == {""}
    assert (table["seconds"].astype(float) > 0).all()
    # the scratch database is gone, the live one untouched
    assert _scratch_databases(client, seeded) == []
    assert seeded["Equipment"].count_documents({}) == 60
    # the mark and the backup's last drill, after the rerun
    assert frame_with(at, "last drill")["last drill"].iloc[0].startswith("✓ passed ")
    assert "Last drill: **✓ passed" in texts(at)
    # kept with the backup, as the CLI's list and status show it
    assert drill_results.last_per_backup(settings)[backup_id]["user"] == "admin"
    # a rerun (any other click) keeps the one result
    at.run()
    assert len(at.success) == 1 and frame_with(at, "what differed") is not None

    home = texts(_home(make_app))
    assert f"Last proven restorable:** `{backup_id}` at " in home and "restore took " in home
    assert "never drilled" not in home


@pytest.mark.parametrize("damage", ["removed", "corrupted"])
def test_a_damaged_backup_fails_naming_the_collection_on_browse_and_home(seeded, make_app, root, client, settings,
                                                                         damage):
    store = LocalStore(root)
    backup_id = make_backup(seeded, root).backup_id
    entry = store.get(backup_id).collection("Equipment_select_options")
    location = entry.own.location
    original = (store.root / location).read_bytes()
    if damage == "removed":
        (store.root / location).unlink()  # the data object itself
        expected = "Equipment_select_options: missing object"
    else:  # one byte changed, the size kept: only the hash can tell
        tamper(store, backup_id, location, lambda data: data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
        expected = "Equipment_select_options: hash mismatch"
    at = _browse(make_app)
    _drill_now(at)
    [failed] = [e.value for e in at.error]
    assert failed.startswith(f"Restore drill of backup {backup_id} FAILED: 1 of 2 collections")
    assert f"- {expected}" in failed and "Traceback" not in failed
    assert not at.success
    table = frame_with(at, "what differed")
    rows = {r["collection"]: r for r in table.to_dict("records")}
    assert rows["Equipment"]["ok"] == "✓" and rows["Equipment_select_options"]["ok"] == "✗"
    assert rows["Equipment_select_options"]["what differed"].startswith(expected.split(": ", 1)[1])
    assert rows["Equipment_select_options"]["seconds"] == rows["Equipment_select_options"]["docs/s"] == "–"
    assert frame_with(at, "last drill")["last drill"].iloc[0].startswith("✗ failed ")
    assert _scratch_databases(client, seeded) == []

    # Home: the failure, naming the backup and the collection; nothing proven yet
    home = _home(make_app)
    [alert] = [e.value for e in home.error]
    assert backup_id in alert and f"- {expected}" in alert
    assert "never drilled" in texts(home)
    # what status and /metrics read
    summary = drill_results.summary(settings)
    assert summary["last"]["ok"] is False and summary["last_success"] is None
    assert any(expected in line for line in drill_lines(summary))

    # repaired: a later drill of that backup passes, and Home's alert is gone
    if damage == "removed":
        (store.root / location).write_bytes(original)
    else:
        tamper(store, backup_id, location, lambda data: original)
    _drill_now(at)
    assert not at.error and any("passed" in s.value for s in at.success)
    home = _home(make_app)
    assert not home.error
    assert f"Last proven restorable:** `{backup_id}`" in texts(home)


def test_a_failed_drill_of_one_backup_stays_on_home_when_another_passes(seeded, make_app, root):
    store = LocalStore(root)
    bad = make_backup(seeded, root, collections=["Equipment_select_options"]).backup_id
    (store.root / store.get(bad).collection("Equipment_select_options").own.location).unlink()
    at = _browse(make_app)
    assert at.selectbox(key="browse_backup").value == bad
    _drill_now(at)
    assert at.error
    good = make_backup(seeded, root, collections=["Equipment"]).backup_id  # its own data objects
    at = _browse(make_app)
    assert at.selectbox(key="browse_backup").value == good
    _drill_now(at)
    assert not at.error
    marks = dict(zip(frame_with(at, "backup")["backup"], frame_with(at, "backup")["last drill"]))
    assert marks[good].startswith("✓ passed") and marks[bad].startswith("✗ failed")
    home = _home(make_app)
    [alert] = [e.value for e in home.error]
    assert bad in alert and good not in alert
    assert f"Last proven restorable:** `{good}`" in texts(home)


def test_a_viewer_cannot_start_a_drill(seeded, make_app, root, client):
    make_backup(seeded, root)
    at = _browse(make_app, "viewer")
    assert not [b for b in at.button if b.key == "browse_drill"]  # no Drill now at all
    body = texts(at)
    assert "Running a drill needs the admin role" in body and "never been drilled" in body
    assert _scratch_databases(client, seeded) == []
    home = texts(_home(make_app))
    assert "Last proven restorable: never drilled" in home


def test_a_drill_that_cannot_run_is_one_error_line(seeded, make_app, root, monkeypatch):
    import webui.drill_view

    make_backup(seeded, root)

    def refuse(*args, **kwargs):
        raise RestoreRefused("refusing to drill: nothing was written", hint="try again later")

    at = _browse(make_app)
    monkeypatch.setattr(webui.drill_view, "drill_backup", refuse)
    _drill_now(at)
    assert [e.value for e in at.error] == ["refusing to drill: nothing was written. Try again later"]
    assert not at.success
    assert frame_with(at, "last drill")["last drill"].tolist() == [""]
