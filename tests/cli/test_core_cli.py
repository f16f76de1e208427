"""The CLI contract (DESIGN.md section 7) for backup, list, verify, cleanup, and its errors."""

from __future__ import annotations

import json
import os
import stat

import pytest

from backup_core import audit

from ..conftest import run_cli
from tests.cli import one_json as _json


@pytest.fixture
def seeded(db):
    db.Equipment.insert_many([{"_id": i, "asset_id": f"EQ-{i:03d}", "price": i * 1.5} for i in range(12)])
    db.Equipment_select_options.insert_many([{"_id": i, "value": f"v{i}"} for i in range(4)])
    return db


def test_backup_list_verify_cleanup_json(cli, seeded):
    b = _json(cli("backup", "--json"))
    assert set(b) >= {"backup_id", "path", "collections"}
    assert b["collections"]["Equipment"]["count"] == 12 and len(b["collections"]["Equipment"]["sha256"]) == 64
    b2 = _json(cli("backup", "--collections", "Equipment", "--compress", "--json"))
    assert list(b2["collections"]) == ["Equipment"]
    listed = _json(cli("list", "--json"))["backups"]
    assert [x["backup_id"] for x in listed] == [b2["backup_id"], b["backup_id"]]
    assert set(listed[0]) >= {"backup_id", "day", "created_at", "trigger", "collections"}
    assert listed[1]["collections"]["Equipment_select_options"]["count"] == 4
    v = _json(cli("verify", b["backup_id"], "--json"))
    assert v["ok"] is True and v["backup_id"] == b["backup_id"] and "Equipment" in v["collections"]
    c = _json(cli("cleanup", "--older-than", "7d", "--json"))
    assert c["deleted"] == []
    c = _json(cli("cleanup", "--older-than", "1s", "--dry-run", "--json"))
    # b is past the age, but the newer b2 holds only Equipment: b is the last backup of the other collection
    assert c["deleted"] == [] and c["dry_run"] is True
    assert c["decisions"][1]["reasons"] == ["newest backup holding data of Equipment_select_options "
                                            "(newer backups hold none)"]
    b3 = _json(cli("backup", "--json"))
    c = _json(cli("cleanup", "--older-than", "1s", "--dry-run", "--json"))
    assert sorted(c["deleted"]) == sorted([b["backup_id"], b2["backup_id"]]) and c["dry_run"] is True
    assert [d["backup_id"] for d in c["decisions"] if d["keep"]] == [b3["backup_id"]]
    # global flags before the command work too
    assert _json(cli("--json", "list"))["backups"]


def test_verify_detects_tampering_with_nonzero_exit(cli, seeded, root):
    b = _json(cli("backup", "--json"))
    path = os.path.join(b["path"], "Equipment.csv")
    if not os.path.isabs(path):
        path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "..", path)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x20
    open(path, "wb").write(bytes(data))
    proc = cli("verify", b["backup_id"], "--json")
    assert proc.returncode != 0
    assert "sha256 mismatch" in proc.stderr and proc.stderr.count("\n") == 1
    assert json.loads(proc.stdout)["ok"] is False


def _err(proc, code=None):
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    return proc.stderr


def test_errors_are_one_line_without_traceback(cli, cli_env, seeded, root, tmp_path):
    assert "no backup with id" in _err(cli("verify", "20000101T000000Z"), 4)
    assert "invalid backup id" in _err(cli("verify", "../../etc"), 2)
    assert "no collection named" in _err(cli("backup", "--collections", "Nope"), 2)
    assert "invalid --collections" in _err(cli("backup", "--collections", ","), 2)
    assert "invalid --older-than" in _err(cli("cleanup", "--older-than", "soon"), 2)
    assert "invalid choice" in _err(cli("frobnicate"), 2)
    env = dict(cli_env, MONGODB_URI="mongodb://admin:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300")
    msg = _err(run_cli(env, "backup"), 3)
    assert "s3cret" not in msg and "***" in msg
    # a failure before the database answers is on the record too, without the password
    outcome, started = audit.read(root, 2)
    assert (outcome["action"], outcome["outcome"], started["outcome"]) == ("backup", "error", "started")
    assert outcome["op"] == started["op"] and "s3cret" not in (root / ".audit" / "audit.jsonl").read_text()
    env = dict(cli_env, MONGODB_URI="not-a-uri")
    assert "s3cret" not in _err(run_cli(env, "backup"))


def test_unwritable_root(cli_env, seeded, tmp_path):
    if os.geteuid() == 0:
        ro = "/proc/1/backups"  # root ignores file modes; procfs refuses even root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    env = dict(cli_env, BACKUP_ROOT=str(ro))
    assert "cannot" in _err(run_cli(env, "backup"), 7)


def test_root_that_is_a_file(cli_env, seeded, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    env = dict(cli_env, BACKUP_ROOT=str(f))
    msg = _err(run_cli(env, "backup"))
    assert "backup root" in msg or "cannot" in msg


def test_corrupt_manifest(cli, seeded):
    b = _json(cli("backup", "--json"))
    mpath = os.path.join(b["path"], "manifest.json")
    with open(mpath, "a") as fh:
        fh.write("garbage")
    msg = _err(cli("verify", b["backup_id"]), 5)
    assert "manifest" in msg
    assert _json(cli("list", "--json"))["backups"] == []


def test_backup_progress_only_on_a_terminal(cli, cli_env, seeded):
    from tests.test_progress import run_cli_on_tty

    # stderr a pipe (scripts, logs): no progress line at all
    proc = cli("backup", "--json")
    assert proc.returncode == 0 and proc.stderr == ""
    # stderr a terminal: one line redrawn in place, cleared at the end; stdout is still the JSON alone
    code, stdout, tty = run_cli_on_tty(cli_env, "backup", "--json", "--jobs", "2")
    assert code == 0, tty
    assert json.loads(stdout)["jobs"] == 2
    assert "\r\x1b[K" in tty and "backup · " in tty and " documents" in tty
    assert "\n" not in tty.replace("\r\n", "\n").rstrip("\n") and tty.endswith("\r\x1b[K")


def test_backup_jobs_flag(cli, seeded):
    assert _json(cli("backup", "--jobs", "1", "--json"))["jobs"] == 1
    proc = cli("backup", "--jobs", "0")
    assert proc.returncode == 2 and "--jobs" in proc.stderr and proc.stderr.count("\n") == 1
