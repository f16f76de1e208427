"""The off-site commands as an admin types them: keygen, backups on s3:// with a key, list, copy, verify."""

from __future__ import annotations

import json
import os
import stat

from backup_core.demo_data import seed_demo

from tests.cli import one_json


def test_keygen_writes_a_private_key_once(cli, tmp_path):
    path = tmp_path / "backup.key"
    body = one_json(cli("keygen", "--out", str(path), "--json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(body["fingerprint"]) == 16 and body["fingerprint"] in path.read_text()
    again = cli("keygen", "--out", str(path))
    assert again.returncode == 2 and "never overwritten" in again.stderr


def test_encrypted_backups_on_s3_from_the_command_line(cli, cli_env, db, s3_root, tmp_path):
    seed_demo(db)
    key = tmp_path / "k.key"
    fp = one_json(cli("keygen", "--out", str(key), "--json"))["fingerprint"]
    env = dict(cli_env, BACKUP_ROOT=s3_root, BACKUP_KEY_FILE=str(key))

    def run(*args, **kw):
        from tests.conftest import run_cli

        return run_cli(dict(env, **kw), *args)

    backup = one_json(run("backup", "--json"))
    assert backup["path"].startswith(s3_root)
    listing = one_json(run("list", "--json"))
    assert listing["backups"][0]["encrypted"] is True and listing["backups"][0]["key_fingerprint"] == fp
    assert one_json(run("verify", backup["backup_id"], "--json"))["ok"] is True
    # without the key: listed as locked, verify and restore refuse naming the fingerprint, exit 10
    blind = {"BACKUP_KEY_FILE": ""}
    listing = one_json(run("list", "--json", **blind))
    assert [(b["backup_id"], b["locked"]) for b in listing["backups"]] == [(backup["backup_id"], True)]
    assert listing["locked"][0]["key_fingerprint"] == fp
    for args in (("verify", backup["backup_id"]), ("restore", backup["backup_id"], "--mode", "replace", "--yes"),
                 ("compare", backup["backup_id"])):
        proc = run(*args, **blind)
        assert proc.returncode == 10 and fp in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    # clean-up without the key cannot judge the backup: it is left alone, and said so
    swept = one_json(run("cleanup", "--keep-last", "1", "--json", **blind))
    assert swept["deleted"] == [] and [b["backup_id"] for b in swept["locked"]] == [backup["backup_id"]]
    text = run("cleanup", "--keep-last", "1", "--dry-run", **blind)
    assert text.returncode == 0 and "left alone: 1 backup(s)" in text.stdout and fp in text.stdout
    assert one_json(run("verify", backup["backup_id"], "--json"))["ok"] is True
    # a second copy in a local folder, verified on arrival; then everything missing
    mirror = tmp_path / "mirror"
    copied = one_json(run("copy", backup["backup_id"], "--to", str(mirror), "--json"))
    assert copied["copied"] == [backup["backup_id"]] and copied["backup_id"] == backup["backup_id"]
    second = one_json(run("backup", "--json"))
    rest = one_json(run("copy", "--all-missing", "--to", str(mirror), "--json"))
    assert rest["copied"] == [second["backup_id"]]
    local = one_json(run("list", "--json", BACKUP_ROOT=str(mirror)))
    assert {b["backup_id"] for b in local["backups"]} == {backup["backup_id"], second["backup_id"]}
    # the copy is still encrypted: nothing readable on disk
    for path in mirror.rglob("*"):
        if path.is_file() and ".audit" not in str(path):
            assert b"Equipment" not in path.read_bytes()
    assert run("copy", "--to", str(mirror)).returncode == 2


def test_a_bad_root_is_a_clear_usage_error(cli):
    for root in ("s3://", "ftp://host/x"):
        proc = cli("list", "--root", root)
        assert proc.returncode == 2 and "backup root" in proc.stderr


def test_key_file_problems_are_one_line(cli, tmp_path):
    missing = cli("list", "--key-file", str(tmp_path / "nope.key"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr and "keygen" in missing.stderr
    bad = tmp_path / "bad.key"
    bad.write_text(json.dumps({"type": "something else"}))
    proc = cli("list", "--key-file", str(bad))
    assert proc.returncode == 2 and "not a valid key" in proc.stderr
    assert os.path.exists(bad)
