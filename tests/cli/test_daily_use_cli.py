"""The CLI as a new admin reads it: every backup listed in time order (locked ones too), text that says
what happened (encrypted, bytes freed), point-in-time said once, a quiet scheduler stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.cli import one_json
from tests.conftest import ROOT, run_cli


def _two_backups_newest_encrypted(cli, cli_env, tmp_path):
    """A plain backup, then an encrypted one; returns (plain id, encrypted id, fingerprint)."""
    key = tmp_path / "k.key"
    fp = one_json(cli("keygen", "--out", str(key), "--json"))["fingerprint"]
    plain = one_json(cli("backup", "--json"))["backup_id"]
    time.sleep(1.1)  # ids are UTC seconds
    encrypted = one_json(run_cli(dict(cli_env, BACKUP_KEY_FILE=str(key)), "backup", "--json"))
    assert encrypted["encrypted"] is True and encrypted["key_fingerprint"] == fp
    return plain, encrypted["backup_id"], fp


def test_list_shows_a_backup_whose_key_is_missing_in_its_place(data, cli, cli_env, tmp_path):
    plain, locked, fp = _two_backups_newest_encrypted(cli, cli_env, tmp_path)
    listing = one_json(cli("list", "--json"))
    assert [b["backup_id"] for b in listing["backups"]] == [locked, plain]  # newest first, both
    first = listing["backups"][0]
    assert first["locked"] is True and first["key_fingerprint"] == fp and first["created_at"].endswith("Z")
    assert listing["backups"][1]["locked"] is False
    assert listing["needed_keys"] == [fp]
    text = cli("list").stdout.splitlines()
    assert text[1].startswith(locked) and f"key {fp}" in text[1] and "locked" in text[1]
    assert text[2].startswith(plain)
    assert any("not configured" in line and fp in line for line in text[3:])


def test_status_names_the_newest_backup_even_when_it_is_locked(data, cli, cli_env, tmp_path):
    plain, locked, fp = _two_backups_newest_encrypted(cli, cli_env, tmp_path)
    out = one_json(cli("status", "--json"))
    assert out["last_backup"]["backup_id"] == locked
    assert out["last_backup"]["locked"] is True and out["last_backup"]["key_fingerprint"] == fp
    text = cli("status").stdout
    assert f"last backup: {locked}" in text and fp in text


def test_backup_text_says_whether_it_is_encrypted_and_status_says_point_in_time_once(data, cli, cli_env,
                                                                                      tmp_path):
    plain = cli("backup")
    assert plain.returncode == 0, plain.stderr
    assert "not encrypted" in plain.stdout.splitlines()[0]
    assert "point-in-time" not in plain.stdout  # not repeated after every backup ...
    key = tmp_path / "k.key"
    fp = one_json(cli("keygen", "--out", str(key), "--json"))["fingerprint"]
    enc = run_cli(dict(cli_env, BACKUP_KEY_FILE=str(key)), "backup")
    assert enc.returncode == 0 and f"encrypted with key {fp}" in enc.stdout.splitlines()[0]
    out = one_json(cli("backup", "--json"))
    assert out["point_in_time"] is False and out["consistency"]["reason"]  # ... but always in the JSON
    status = cli("status").stdout
    assert status.count("NOT point-in-time consistent") == 1 and "standalone server" in status
    assert one_json(cli("status", "--json"))["point_in_time"]["consistent"] is False


def test_cleanup_dry_run_says_how_many_bytes_it_would_free(data, cli):
    first = one_json(cli("backup", "--json"))
    data["Equipment"].insert_one({"name": "new", "qty": 3})  # so the second backup stores new data
    one_json(cli("backup", "--json"))
    dry = cli("cleanup", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    freed = one_json(cli("cleanup", "--keep-last", "1", "--dry-run", "--json"))["freed_bytes"]
    assert freed > 0 and "would free" in dry.stdout and f"({freed} bytes" in dry.stdout
    assert first["backup_id"] in dry.stdout


def test_headless_scheduler_says_its_interval_in_hours_and_stops_without_json(data, cli_env, tmp_path):
    err = tmp_path / "sched.err"
    with err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "backup_core", "scheduler", "--every", "6m", "--lease", "3"],
                                cwd=ROOT, env=cli_env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 30
        while "scheduler active" not in err.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "every 0.1 h (6m 0s)" in err.read_text(), err.read_text()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0
    assert out.strip().startswith("scheduler stopped"), out
    try:
        json.loads(out)
    except ValueError:
        pass
    else:
        raise AssertionError(f"a JSON document without --json: {out!r}")
