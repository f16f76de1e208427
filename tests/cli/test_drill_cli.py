"""``drill [ID | --latest] [--target-uri URI] [--json]`` (DESIGN.md section 10) and where its results show:
``list --json`` per backup, ``status --json`` under ``drill``, ``scheduler --drill-every``."""

from __future__ import annotations

import json

import pytest

from backup_core.scheduler import load_config

from ..store.conftest import tamper

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backed_up(cli, data):
    out = cli("backup", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["backup_id"]


def test_drill_json_list_and_status(cli, backed_up, client, db):
    out = cli("drill", "--latest", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["backup_id"] == backed_up and result["ok"] is True and result["dropped"] is True
    assert set(result["collections"]) == {"Equipment", "Equipment_select_options"}
    for c in result["collections"].values():
        assert c["ok"] and c["count"] == c["restored"] and c["docs_per_s"] > 0 and c["problems"] == []
    assert result["restore_s"] > 0 and result["documents"] == 3
    assert result["target"] not in client.list_database_names()
    listed = json.loads(cli("list", "--json").stdout)
    [b] = listed["backups"]
    assert b["drill"]["ok"] is True and b["drill"]["at"] == result["at"] and b["drill"]["duration_s"] > 0
    status = json.loads(cli("status", "--json").stdout)
    assert status["drill"]["proven"] == (f"last proven restorable: {backed_up} at {result['at']}, "
                                         f"restore took {result['restore_s']:.2f} s")
    assert status["leftovers"]["drill_databases"] == []
    text = cli("status").stdout
    assert f"drill: last proven restorable: {backed_up}" in text
    assert "passed" in cli("list").stdout.splitlines()[1]


def test_a_failed_drill_exits_non_zero_with_one_line_per_failing_collection(cli, backed_up, root):
    from backup_core.store import LocalStore

    store = LocalStore(root)
    for name in ("Equipment", "Equipment_select_options"):
        tamper(store, backed_up, store.get(backed_up).collection(name).own.location,
               lambda data: data[:-3] + bytes([data[-3] ^ 1]) + data[-2:])
    out = cli("drill", backed_up)
    assert out.returncode == 12 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: restore drill of backup {backed_up} FAILED: 2 of 2 collections did not restore as backed up",
        "Equipment: hash mismatch: the stored data does not match its SHA-256 in the manifest",
        "Equipment_select_options: hash mismatch: the stored data does not match its SHA-256 in the manifest",
    ]
    as_json = cli("drill", backed_up, "--json")
    assert as_json.returncode == 12
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 12 and len(doc["failures"]) == 2
    status = json.loads(cli("status", "--json").stdout)["drill"]
    assert status["last"]["ok"] is False and status["last_success"] is None
    assert "WARNING: the last drill" in cli("status").stdout
    assert "FAILED" in cli("list").stdout.splitlines()[1]


@pytest.mark.parametrize("args, code, message", [
    (["20261124T143022Z", "--latest"], 2, "give a backup ID or --latest, not both"),
    (["20261124T143022Z"], 4, "no backup with id 20261124T143022Z"),
    (["../etc"], 2, "invalid backup id"),
    (["--target-db", "admin"], 8, "refusing to drill into admin"),
    (["--target-uri", "mongodb://u:secret@h:notaport/"], 2, "invalid MongoDB URI mongodb://u:***@h:notaport/"),
])
def test_bad_input_is_one_line_and_changes_nothing(cli, backed_up, client, db, args, code, message):
    before = sorted(client.list_database_names())
    out = cli("drill", *args)
    assert out.returncode == code, out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith("error: ") and message in line and "secret" not in out.stderr
    assert sorted(client.list_database_names()) == before


def test_scheduler_drill_period_is_saved_and_checked(cli, settings, db):
    assert load_config(settings).drill_every_days == 7.0
    out = cli("scheduler", "--drill-every", "2d", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["drill_every_days"] == 2.0 and load_config(settings).drill_every_days == 2.0
    assert cli("scheduler", "--drill-every", "off").returncode == 0
    assert load_config(settings).drill_every_days == 0.0
    for bad in ("-3d", "soon"):
        out = cli("scheduler", "--drill-every", bad)
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1, out.stderr
    assert load_config(settings).drill_every_days == 0.0
    status = json.loads(cli("status", "--json").stdout)
    assert status["scheduler"]["drill_every_days"] == 0.0
