"""``python -m backup_core unlock USER``: lifts any lock-out, is audited, and the lock-out message names it."""

from __future__ import annotations

import shlex
import subprocess

import pytest
from argon2 import PasswordHasher

from backup_core import audit, auth
from backup_core.config import Settings
from backup_core.errors import AuthError
from tests.cli import one_json
from tests.conftest import ROOT

PW = "correct horse battery"


@pytest.fixture
def settings(root, monkeypatch):
    # in-process logins only; the CLI subprocess uses its own (real) hasher and never hashes here
    monkeypatch.setattr(auth.common, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(auth.common, "_dummy_hash", None)
    for var in ("BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH"):
        monkeypatch.delenv(var, raising=False)
    return Settings(backup_root=root, user="tester", secrets={})


def _lock(settings, name):
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthError):
            auth.authenticate(settings, name, "bad password")
    with pytest.raises(AuthError, match="account locked") as err:
        auth.authenticate(settings, name, PW)
    return str(err.value)


def test_unlock_json_lifts_the_lockout_and_is_audited(cli, settings):
    auth.set_password(settings, "alice", PW)
    _lock(settings, "alice")
    out = one_json(cli("unlock", "alice", "--json"))
    assert out["user"] == "alice" and out["was_locked"] is True
    assert out["locked_until"].endswith("Z") and out["failures_cleared"] == 0
    assert auth.lockout_remaining(settings, "alice") == 0
    assert auth.authenticate(settings, "alice", PW).name == "alice"
    entry = [e for e in audit.read(settings.backup_root, limit=None) if e["action"] == "unlock"][0]
    assert (entry["target"], entry["outcome"], entry["was_locked"]) == ("alice", "ok", True)
    # a second unlock finds nothing to do
    again = one_json(cli("unlock", "alice", "--json"))
    assert again["was_locked"] is False and again["locked_until"] is None


def test_unlock_unknown_name_clears_state_and_says_nothing_was_locked(cli, settings):
    proc = cli("unlock", "nobody")
    assert proc.returncode == 0, proc.stderr
    assert "'nobody' was not locked" in proc.stdout
    _lock(settings, "ghost")  # unknown names are locked too; unlock lifts that as well
    out = one_json(cli("unlock", "ghost", "--json"))
    assert out == {**out, "user": "ghost", "was_locked": True}
    assert auth.lockout_remaining(settings, "ghost") == 0


def test_unlock_refuses_an_invalid_name(cli, settings):
    proc = cli("unlock", "bad/name")
    assert proc.returncode == 2 and "invalid user name" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert audit.read(settings.backup_root, limit=1)[0]["outcome"] == "error"


def test_the_command_in_the_lockout_message_works(cli_env, settings, monkeypatch):
    monkeypatch.chdir(ROOT)
    auth.set_password(settings, "alice", PW)
    message = _lock(settings, "alice")
    command = message.split("ask an admin to run: ", 1)[1]
    argv = shlex.split(command)
    assert argv[1:] == ["-m", "backup_core", "unlock", "alice"] and argv[0] != "python"
    proc = subprocess.run(argv, cwd=ROOT, env=cli_env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "unlocked 'alice'" in proc.stdout
    assert auth.authenticate(settings, "alice", PW).name == "alice"
