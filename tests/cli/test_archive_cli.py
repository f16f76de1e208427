"""``archive COLLECTION --filter JSON [--dry-run] [--yes] [--json]`` (DESIGN.md section 10, contract)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from backup_core import audit
from tests.cli import one_json

NOW = datetime(2026, 6, 1)
FILTER = '{"at": {"$lt": {"$date": "2026-03-03T00:00:00Z"}}}'


def _fill(db):
    db["activities"].insert_many([{"_id": i, "at": NOW - timedelta(days=i)} for i in range(120)])


def test_archive_json_contract_and_merge_restore(cli, db, root):
    _fill(db)
    dry = one_json(cli("archive", "activities", "--filter", FILTER, "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["archived"] == 29 and dry["deleted"] == 0 and dry["backup_id"] is None
    assert db["activities"].count_documents({}) == 120
    out = one_json(cli("archive", "activities", "--filter", FILTER, "--yes", "--json"))
    assert {"backup_id", "archived", "deleted"} <= set(out)
    assert out["archived"] == out["deleted"] == 29 and out["dry_run"] is False
    assert db["activities"].count_documents({}) == 91
    listed = one_json(cli("list", "--json"))["backups"]
    assert [(b["backup_id"], b["trigger"]) for b in listed] == [(out["backup_id"], "archive")]
    assert one_json(cli("verify", out["backup_id"], "--json"))["ok"] is True
    refused = cli("restore", out["backup_id"], "--mode", "replace", "--yes")
    assert refused.returncode == 8 and "--mode merge" in refused.stderr
    merged = one_json(cli("restore", out["backup_id"], "--mode", "merge", "--yes", "--json"))
    assert merged["collections"]["activities"]["inserted"] == 29 and db["activities"].count_documents({}) == 120
    text = cli("archive", "activities", "--filter", FILTER, "--yes")
    assert text.returncode == 0 and "archived 29 document(s) of activities" in text.stdout
    assert "--mode merge to bring them back" in text.stdout


def test_archive_without_yes_refuses_like_restore(cli, db, root):
    _fill(db)
    proc = cli("archive", "activities", "--filter", FILTER)
    assert proc.returncode == 8 and len(proc.stderr.strip().splitlines()) == 1
    assert "needs confirmation: nothing was changed" in proc.stderr and "--dry-run" in proc.stderr
    assert db["activities"].count_documents({}) == 120 and not list(root.glob("*day/*"))
    entry = audit.read(root, 1)[0]
    assert entry["action"] == "archive" and entry["outcome"] == "refused"


def test_bad_filters_are_one_line_and_change_nothing(cli, db, root):
    _fill(db)
    for bad, words in (("{not json", "not JSON"),
                       ('{"$where": "sleep(100)"}', "operator $where is not supported"),
                       ('{"at": {"$function": {}}}', "operator $function is not supported"),
                       ('["at"]', "expected a JSON object"),
                       ("{}", "empty filter"),
                       ('{"at": {"$lt": {"$date": "last tuesday"}}}', "invalid $date")):
        proc = cli("archive", "activities", "--filter", bad, "--yes", "--json")
        assert proc.returncode == 2, (bad, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr, proc.stderr
        assert json.loads(proc.stdout)["ok"] is False
    missing = cli("archive", "nope", "--filter", FILTER, "--yes")
    assert missing.returncode == 2 and "no collection named 'nope'" in missing.stderr
    assert db["activities"].count_documents({}) == 120 and not list(root.glob("*day/*"))
    assert cli("archive", "activities", "--yes").returncode == 2  # --filter is required


def test_a_bad_filter_is_refused_before_the_database_is_reached(cli_env, root):
    from tests.conftest import run_cli

    env = {**cli_env, "MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200"}
    proc = run_cli(env, "archive", "activities", "--filter", '{"$where": "1"}', "--yes")
    assert proc.returncode == 2 and "operator $where is not supported" in proc.stderr
    entry = audit.read(root, 1)[0]
    assert entry["action"] == "archive" and entry["outcome"] == "refused"
