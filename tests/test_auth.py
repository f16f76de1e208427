"""Dashboard users: hash-only storage, roles, lock-out and its expiry, user sources, set-password CLI."""

from __future__ import annotations

import dataclasses

import json
import os
import stat
import subprocess
import sys
import threading

import pytest
from argon2 import PasswordHasher

from backup_core import audit, auth
from backup_core.config import Settings
from backup_core.errors import AuthError, ConfigError, LockBusy, UsageError

from .conftest import ROOT, run_cli

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_hasher(monkeypatch):
    # production parameters (64 MiB, t=3) are checked in one test; the rest need speed
    monkeypatch.setattr(auth.common, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    monkeypatch.setattr(auth.common, "_dummy_hash", None)
    for var in ("BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def clock(monkeypatch):
    """A settable clock for the lock-out."""
    now = {"t": 1_800_000_000.0}
    monkeypatch.setattr(auth.common, "_now", lambda: now["t"])
    return now


@pytest.fixture
def cfg(tmp_path):
    root = tmp_path / "backups"
    root.mkdir()
    return Settings(backup_root=root, user="operator", secrets={})


def _audit_text(cfg) -> str:
    p = audit.audit_path(cfg.backup_root)
    return p.read_text() if p.exists() else ""


def test_set_password_stores_only_an_argon2_hash(cfg):
    assert not auth.has_users(cfg)
    user = auth.set_password(cfg, "alice", PW)
    assert user == auth.User("alice", "admin") and user.is_admin
    path = auth.users_path(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_text()
    assert PW not in raw
    stored = json.loads(raw)["users"]["alice"]
    assert stored["password_hash"].startswith("$argon2id$") and stored["role"] == "admin"
    assert auth.authenticate(cfg, "alice", PW) == user
    assert auth.has_users(cfg) and auth.list_users(cfg) == [user]
    log = _audit_text(cfg)
    assert PW not in log
    entries = audit.read(cfg.backup_root)
    assert [(e["action"], e["outcome"]) for e in entries] == [("login", "ok"), ("set-password", "ok")]
    assert entries[1]["user"] == "operator" and entries[1]["target"] == "alice"


def test_default_hasher_uses_strong_parameters(monkeypatch):
    monkeypatch.undo()  # the real module-level hasher
    h = auth.hash_password(PW)
    assert h.startswith("$argon2id$") and "m=65536" in h
    assert auth.common._verify(h, PW) and not auth.common._verify(h, PW + "x")


def test_changing_a_password_and_role(cfg):
    auth.set_password(cfg, "alice", PW)
    auth.set_password(cfg, "alice", "another password", role="viewer")
    with pytest.raises(AuthError, match="invalid user name or password"):
        auth.authenticate(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", "another password")
    assert user.role == "viewer" and not user.is_admin


@pytest.mark.parametrize("name,password,role,message", [
    ("bob", "", "admin", "empty"),
    ("bob", "Pw3$xyz", "admin", "at least 8"),
    ("bob", "x" * 2000, "admin", "too long"),
    ("bad name", PW, "admin", "invalid user name"),
    ("../bob", PW, "admin", "invalid user name"),
    ("", PW, "admin", "invalid user name"),
    ("bob", PW, "root", "invalid role"),
])
def test_set_password_refuses_bad_input(cfg, name, password, role, message):
    with pytest.raises(UsageError, match=message):
        auth.set_password(cfg, name, password, role=role)
    assert not auth.users_path(cfg).exists()
    entry = audit.read(cfg.backup_root)[0]
    assert entry["action"] == "set-password" and entry["outcome"] == "error"
    if password:
        assert password not in _audit_text(cfg)


def test_unknown_user_and_wrong_password_look_the_same(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    with pytest.raises(AuthError) as wrong:
        auth.authenticate(cfg, "alice", "Guess-1234")
    with pytest.raises(AuthError) as unknown:
        auth.authenticate(cfg, "mallory", "Guess-1234")
    with pytest.raises(AuthError) as invalid:
        auth.authenticate(cfg, "no such/name", "Guess-1234")
    assert str(wrong.value) == str(unknown.value) == str(invalid.value) == "invalid user name or password"
    reasons = [(e["user"], e["outcome"], e.get("reason")) for e in audit.read(cfg.backup_root, limit=3)]
    assert reasons == [("<invalid name>", "error", "invalid name"), ("mallory", "error", "unknown user"),
                       ("alice", "error", "wrong password")]
    assert "Guess-1234" not in _audit_text(cfg)


def test_roles_and_require_admin():
    auth.require_admin(auth.User("a", "admin"), "restore")
    with pytest.raises(AuthError, match="restore needs the admin role"):
        auth.require_admin(auth.User("v", "viewer"), "restore")
    with pytest.raises(AuthError, match="cleanup needs the admin role"):
        auth.require_admin(None, "cleanup")
    assert auth.ROLES == ("admin", "viewer")


def test_lockout_after_five_failures_and_its_expiry(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid user name or password"):
            auth.authenticate(cfg, "alice", "bad password")
        clock["t"] += 60
    with pytest.raises(AuthError, match=r"account locked .* try again in 15 minutes"):
        auth.authenticate(cfg, "alice", "bad password")
    # the right password does not get through a lock-out
    clock["t"] += 10 * 60
    with pytest.raises(AuthError, match="try again in 5 minutes"):
        auth.authenticate(cfg, "alice", PW)
    assert 0 < auth.lockout_remaining(cfg, "alice") <= 5 * 60
    clock["t"] += 5 * 60 + 1
    assert auth.lockout_remaining(cfg, "alice") == 0
    assert auth.authenticate(cfg, "alice", PW).name == "alice"
    entries = audit.read(cfg.backup_root, limit=None)
    assert sum(1 for e in entries if e.get("reason") == "locked") == 1
    assert any(e.get("locked_until") for e in entries if e.get("reason") == "wrong password")


def test_failures_outside_the_window_do_not_add_up(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "alice", "bad password")
    clock["t"] += 16 * 60
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "alice", "bad password")
    assert auth.authenticate(cfg, "alice", PW)
    # a success clears the count
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "alice", "bad password")
    assert auth.authenticate(cfg, "alice", PW)


def test_unknown_names_are_locked_too(cfg, clock):
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "ghost", "bad password")
    with pytest.raises(AuthError, match="account locked"):
        auth.authenticate(cfg, "ghost", "bad password")


def test_lockout_is_persisted_and_shared_across_processes(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "alice", "bad password")
    state = json.loads((auth.auth_dir(cfg) / auth.LOCKOUT_FILE).read_text())
    assert state["alice"]["locked_until"] == clock["t"] + auth.LOCKOUT_S
    assert stat.S_IMODE((auth.auth_dir(cfg) / auth.LOCKOUT_FILE).stat().st_mode) == 0o600
    # another process, with the real clock: the lock is still in force for it
    code = ("import sys, time; from backup_core import auth; from backup_core.config import Settings\n"
            f"auth.common._now = lambda: {clock['t'] + 60}\n"
            f"s = Settings(backup_root={str(cfg.backup_root)!r}, user='x', secrets={{}})\n"
            "try:\n    auth.authenticate(s, 'alice', sys.argv[1])\n"
            "except Exception as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, PW], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "account locked" in out.stdout and "14 minutes" in out.stdout, out.stderr


def test_new_password_clears_a_lockout(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "alice", "bad password")
    auth.set_password(cfg, "alice", "a brand new password")
    assert auth.authenticate(cfg, "alice", "a brand new password")


def test_users_from_secrets_toml(cfg, tmp_path):
    h_viewer = auth.hash_password("viewer password")
    h_admin = auth.hash_password("secret admin pw")
    s = Settings(backup_root=cfg.backup_root, user="op", secrets={
        "auth": {"users": {"carol": {"password_hash": h_viewer, "role": "viewer"},
                           "dan": {"password_hash": h_admin, "role": "admin"}}}})
    assert auth.has_users(s)
    assert auth.list_users(s) == [auth.User("carol", "viewer"), auth.User("dan", "admin")]
    assert auth.authenticate(s, "carol", "viewer password").role == "viewer"
    assert auth.authenticate(s, "dan", "secret admin pw").is_admin
    assert audit.read(s.backup_root, limit=1)[0]["source"] == "secrets.toml"
    # users.json comes first for the same name
    auth.set_password(s, "carol", "file password!", role="admin")
    assert auth.authenticate(s, "carol", "file password!") == auth.User("carol", "admin")
    with pytest.raises(AuthError):
        auth.authenticate(s, "carol", "viewer password")


def test_secrets_toml_file_is_read_by_settings(tmp_path, monkeypatch):
    h = auth.hash_password("toml password")
    f = tmp_path / "secrets.toml"
    f.write_text(f'[auth.users.erin]\npassword_hash = "{h}"\nrole = "viewer"\n')
    monkeypatch.setenv("BACKUP_SECRETS_FILE", str(f))
    s = Settings.load(root=tmp_path / "b", env={})
    assert auth.authenticate(s, "erin", "toml password") == auth.User("erin", "viewer")


@pytest.mark.parametrize("entry,message", [
    ({"password_hash": "plain text password", "role": "admin"}, "not an argon2 hash"),
    ({"role": "admin"}, "not an argon2 hash"),
    ({"password_hash": "$argon2id$x", "role": "superuser"}, "unknown role"),
])
def test_bad_secrets_entries_are_config_errors(cfg, entry, message):
    s = Settings(backup_root=cfg.backup_root, user="op", secrets={"auth": {"users": {"frank": entry}}})
    with pytest.raises(ConfigError, match=message):
        auth.authenticate(s, "frank", "plain text password")
    entry = audit.read(cfg.backup_root, limit=1)[0]
    assert (entry["action"], entry["outcome"], entry["reason"]) == ("login", "error", "configuration")
    assert "plain text password" not in json.dumps(entry)  # a pasted password is never echoed


def test_admin_from_environment(cfg, monkeypatch):
    monkeypatch.setenv("BACKUP_ADMIN_USER", "root-admin")
    monkeypatch.setenv("BACKUP_ADMIN_PASSWORD_HASH", auth.hash_password("env password"))
    env_cfg = dataclasses.replace(Settings.load(root=cfg.backup_root, secrets={}), user="op")
    assert auth.list_users(env_cfg) == [auth.User("root-admin", "admin")]
    assert auth.authenticate(env_cfg, "root-admin", "env password").is_admin
    monkeypatch.delenv("BACKUP_ADMIN_PASSWORD_HASH")
    with pytest.raises(ConfigError, match="both"):
        auth.has_users(Settings.load(root=cfg.backup_root, secrets={}))


def test_concurrent_set_password_keeps_every_user(cfg):
    names = [f"user{i}" for i in range(8)]
    threads = [threading.Thread(target=auth.set_password, args=(cfg, n, PW)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [u.name for u in auth.list_users(cfg)] == sorted(names)


# ---------------------------------------------------------------- the CLI, in a subprocess

@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env.update({"BACKUP_ROOT": str(tmp_path / "backups"),
                "BACKUP_SECRETS_FILE": str(tmp_path / "no-secrets.toml")})
    for var in ("BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH", "MONGODB_URI"):
        env.pop(var, None)
    return env


def test_set_password_cli_reads_stdin(cli_env, tmp_path):
    proc = run_cli(cli_env, "set-password", "gina", "--role", "viewer", "--json", input_text=PW + "\n")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["user"] == "gina" and out["role"] == "viewer"
    users_file = tmp_path / "backups" / ".auth" / "users.json"
    assert out["path"] == str(users_file) and PW not in users_file.read_text()
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    assert PW not in proc.stdout + proc.stderr + (tmp_path / "backups" / ".audit" / "audit.jsonl").read_text()
    s = Settings(backup_root=tmp_path / "backups", user="x", secrets={})
    assert auth.authenticate(s, "gina", PW) == auth.User("gina", "viewer")


@pytest.mark.parametrize("stdin,message", [("", "empty"), ("\n", "empty"), ("short\n", "at least 8")])
def test_set_password_cli_refuses_weak_passwords(cli_env, tmp_path, stdin, message):
    proc = run_cli(cli_env, "set-password", "hank", input_text=stdin)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "backups" / ".auth" / "users.json").exists()


def test_set_password_cli_print_hash_stores_nothing(cli_env, tmp_path):
    proc = run_cli(cli_env, "set-password", "ivy", "--print-hash", input_text=PW + "\n")
    assert proc.returncode == 0, proc.stderr
    h = proc.stdout.strip()
    assert h.startswith("$argon2id$") and PasswordHasher().verify(h, PW)
    assert not (tmp_path / "backups" / ".auth" / "users.json").exists()


def test_set_password_cli_bad_role_and_name(cli_env):
    assert run_cli(cli_env, "set-password", "x", "--role", "root", input_text=PW).returncode == 2
    proc = run_cli(cli_env, "set-password", "bad/name", input_text=PW)
    assert proc.returncode == 2 and "invalid user name" in proc.stderr


# ---------------------------------------------------------------- sessions follow the user store

def _remove_user(cfg, name):
    path = auth.users_path(cfg)
    data = json.loads(path.read_text())
    del data["users"][name]
    auth.UserFiles(cfg).write_json(auth.USERS_FILE, data)


def _logouts(cfg):
    return [(e["user"], e.get("reason")) for e in audit.read(cfg.backup_root, limit=None)
            if e["action"] == "logout"]


def test_login_carries_a_fingerprint_of_the_hash_never_the_hash(cfg):
    auth.set_password(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", PW)
    stored = json.loads(auth.users_path(cfg).read_text())["users"]["alice"]["password_hash"]
    assert len(user.fingerprint) == 16 and int(user.fingerprint, 16) >= 0
    assert user.fingerprint not in stored and stored not in repr(user)
    assert "fingerprint" not in user.to_json()
    assert user == auth.User("alice", "admin")  # the fingerprint is not part of equality


def test_refresh_keeps_a_valid_session(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", PW)
    check = auth.refresh(cfg, user)
    assert check.user is user and not check.ended and check.reason == ""
    assert _logouts(cfg) == []


def test_refresh_logs_out_a_deleted_user(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    auth.set_password(cfg, "bob", PW)
    user = auth.authenticate(cfg, "alice", PW)
    _remove_user(cfg, "alice")
    check = auth.refresh(cfg, user)
    assert check.ended and check.user is None and check.reason == "deleted"
    assert check.message == "You were logged out: the user alice no longer exists."
    assert _logouts(cfg) == [("alice", "deleted")]
    assert auth.refresh(cfg, auth.authenticate(cfg, "bob", PW)).user.name == "bob"


def test_refresh_follows_a_demotion_and_a_promotion(cfg, clock):
    auth.set_password(cfg, "alice", PW, role="admin")
    user = auth.authenticate(cfg, "alice", PW)
    # set-password with the same password only changes the role: the session stays, as a viewer
    auth.set_password(cfg, "alice", PW, role="viewer")
    check = auth.refresh(cfg, user)
    assert not check.ended and check.reason == "role changed"
    assert check.user == auth.User("alice", "viewer") and not check.user.is_admin
    assert check.user.fingerprint == user.fingerprint
    with pytest.raises(AuthError, match="admin role"):
        auth.require_admin(check.user, "restore")
    auth.set_password(cfg, "alice", PW, role="admin")
    promoted = auth.refresh(cfg, check.user)
    assert promoted.user == auth.User("alice", "admin") and promoted.user.is_admin
    assert _logouts(cfg) == []
    changes = [e.get("password_changed") for e in audit.read(cfg.backup_root, limit=None)
               if e["action"] == "set-password"]
    assert changes == [False, False, True]  # newest first


def test_refresh_logs_out_after_a_password_change(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    old_session = auth.authenticate(cfg, "alice", PW)
    auth.set_password(cfg, "alice", "a brand new password", role="admin")
    check = auth.refresh(cfg, old_session)
    assert check.ended and check.reason == "password changed"
    assert "the password of alice was changed" in check.message
    new_session = auth.authenticate(cfg, "alice", "a brand new password")
    assert auth.refresh(cfg, new_session).user is new_session
    assert _logouts(cfg) == [("alice", "password changed")]


def test_refresh_logs_out_a_locked_user_until_unlocked(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", PW)
    for _ in range(4):
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "alice", "bad password")
    assert auth.refresh(cfg, user).user is user  # failures alone do not end a session
    with pytest.raises(AuthError, match="account locked"):
        auth.authenticate(cfg, "alice", "bad password")
    check = auth.refresh(cfg, user)
    assert check.ended and check.reason == "locked"
    assert check.message.startswith("You were logged out: the user alice is locked after 5 failed logins")
    assert "try again in 15 minutes" in check.message and "-m backup_core unlock alice" in check.message
    logout = audit.read(cfg.backup_root, limit=1)[0]
    assert (logout["action"], logout["user"], logout["reason"]) == ("logout", "alice", "locked")
    auth.unlock(cfg, "alice")
    assert auth.refresh(cfg, auth.authenticate(cfg, "alice", PW)).user.name == "alice"


def test_refresh_follows_secrets_toml_and_the_environment(cfg, clock, monkeypatch):
    h = auth.hash_password("secret admin pw")
    s = Settings(backup_root=cfg.backup_root, user="op",
                 secrets={"auth": {"users": {"dan": {"password_hash": h, "role": "admin"}}}})
    dan = auth.authenticate(s, "dan", "secret admin pw")
    demoted = Settings(backup_root=cfg.backup_root, user="op",
                       secrets={"auth": {"users": {"dan": {"password_hash": h, "role": "viewer"}}}})
    assert auth.refresh(demoted, dan).user.role == "viewer"
    assert auth.refresh(Settings(backup_root=cfg.backup_root, user="op", secrets={}), dan).reason == "deleted"

    env_cfg = dataclasses.replace(cfg, admin_user="root-admin",
                                  admin_password_hash=auth.hash_password("env password"))
    root_admin = auth.authenticate(env_cfg, "root-admin", "env password")
    assert auth.refresh(env_cfg, root_admin).user is root_admin
    env_cfg = dataclasses.replace(env_cfg, admin_password_hash=auth.hash_password("other env password"))
    assert auth.refresh(env_cfg, root_admin).reason == "password changed"
    env_cfg = dataclasses.replace(env_cfg, admin_user="someone-else")
    assert auth.refresh(env_cfg, root_admin).reason == "deleted"


def test_refresh_fails_closed_on_a_broken_user_file(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", PW)
    auth.users_path(cfg).write_text("{not json")
    check = auth.refresh(cfg, user)
    assert check.ended and check.reason == "configuration" and "not valid JSON" in check.message


def test_refresh_is_cheap_no_hashing_and_files_read_only_when_changed(cfg, clock, monkeypatch):
    auth.set_password(cfg, "alice", PW)
    user = auth.authenticate(cfg, "alice", PW)

    class NoHashing:
        def __getattr__(self, name):
            raise AssertionError(f"refresh must not use the password hasher ({name})")

    reads = []
    real_read, hasher = auth.UserFiles.read_json, auth.common._hasher
    monkeypatch.setattr(auth.UserFiles, "read_json",
                        lambda self, name, what: reads.append(name) or real_read(self, name, what))
    monkeypatch.setattr(auth.common, "_hasher", NoHashing())
    for _ in range(50):
        assert auth.refresh(cfg, user).user is user
    assert reads.count(auth.USERS_FILE) <= 1 and reads.count(auth.LOCKOUT_FILE) <= 1
    monkeypatch.setattr(auth.common, "_hasher", hasher)
    auth.set_password(cfg, "bob", PW)
    monkeypatch.setattr(auth.common, "_hasher", NoHashing())
    reads.clear()
    assert auth.refresh(cfg, user).user is user
    assert reads == [auth.USERS_FILE]  # users.json changed, lockout.json did not


def test_a_user_made_by_hand_is_not_refreshed(cfg):
    # only authenticate() makes a session user; code that builds a User itself (tests) opts out
    bare = auth.User("nobody", "admin")
    assert auth.refresh(cfg, bare).user is bare


# ---------------------------------------------------------------- unlock

def test_unlock_lifts_a_lockout_and_is_audited(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "alice", "bad password")
    with pytest.raises(AuthError, match="account locked"):
        auth.authenticate(cfg, "alice", PW)
    result = auth.unlock(cfg, "alice")
    assert result.was_locked and result.locked_until == auth.common._iso(clock["t"] + auth.LOCKOUT_S)
    assert result.to_json()["user"] == "alice" and "unlocked 'alice'" in result.to_text()
    assert auth.lockout_remaining(cfg, "alice") == 0
    assert "alice" not in json.loads((auth.auth_dir(cfg) / auth.LOCKOUT_FILE).read_text())
    assert auth.authenticate(cfg, "alice", PW).name == "alice"
    entry = [e for e in audit.read(cfg.backup_root, limit=None) if e["action"] == "unlock"][0]
    assert (entry["user"], entry["target"], entry["outcome"], entry["was_locked"]) == \
        ("operator", "alice", "ok", True)


def test_unlock_clears_the_failure_count(cfg, clock):
    auth.set_password(cfg, "alice", PW)
    for _ in range(3):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "alice", "bad password")
    result = auth.unlock(cfg, "alice")
    assert not result.was_locked and result.failures_cleared == 3 and result.locked_until is None
    for _ in range(4):  # would have locked at the 2nd without the unlock
        with pytest.raises(AuthError, match="invalid"):
            auth.authenticate(cfg, "alice", "bad password")


def test_unlock_of_unknown_or_invalid_names(cfg, clock):
    result = auth.unlock(cfg, "nobody")
    assert result.to_json() == {"user": "nobody", "was_locked": False, "locked_until": None,
                                "failures_cleared": 0, "path": str(auth.auth_dir(cfg) / auth.LOCKOUT_FILE)}
    assert "was not locked" in result.to_text()
    assert not auth.auth_dir(cfg).exists()  # nothing created for a name nobody tried
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "ghost", "bad password")
    assert auth.unlock(cfg, "ghost").was_locked
    with pytest.raises(UsageError, match="invalid user name"):
        auth.unlock(cfg, "bad/name")
    entries = [(e["outcome"], e.get("target")) for e in audit.read(cfg.backup_root, limit=None)
               if e["action"] == "unlock"]
    assert entries == [("error", None), ("ok", "ghost"), ("ok", "nobody")]


def test_lockout_message_says_how_to_unlock_with_this_interpreter(cfg, clock, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "executable", str(tmp_path / ".venv" / "bin" / "python"))
    assert auth.python_command() == ".venv/bin/python"
    for _ in range(5):
        with pytest.raises(AuthError):
            auth.authenticate(cfg, "alice", "bad password")
    with pytest.raises(AuthError) as err:
        auth.authenticate(cfg, "alice", "bad password")
    assert str(err.value) == ("account locked after 5 failed logins; try again in 15 minutes "
                              "or ask an admin to run: .venv/bin/python -m backup_core unlock alice")
    monkeypatch.setattr(sys, "executable", "/opt/py 3/bin/python3")  # outside the cwd: absolute, quoted
    assert auth.unlock_command("alice") == "'/opt/py 3/bin/python3' -m backup_core unlock alice"


# ---------------------------------------------------------------- the lock over the auth files

def test_auth_lock_excludes_threads_and_a_held_lock_times_out(cfg, clock, monkeypatch):
    auth.set_password(cfg, "alice", PW)
    # another holder (any process, or another thread of this one): a login gives up clearly
    monkeypatch.setattr(auth.common, "LOCK_TIMEOUT_S", 0.3)
    held, release = threading.Event(), threading.Event()

    def hold():
        with auth.common.UserFiles(cfg).state.lock():
            held.set()
            release.wait(30)

    other = threading.Thread(target=hold)
    other.start()
    assert held.wait(10)
    try:
        with pytest.raises(LockBusy, match="user store .* is busy"):
            auth.authenticate(cfg, "alice", PW)
    finally:
        release.set()
        other.join(10)
    monkeypatch.setattr(auth.common, "LOCK_TIMEOUT_S", 30.0)

    # concurrent failed logins: every failure is counted, none lost to a race
    names = ["u0", "u1", "u2", "u3"]
    errors = []

    def fail(name):
        try:
            auth.authenticate(cfg, name, "bad password")
        except AuthError as exc:
            errors.append(str(exc))

    holder = auth.common.UserFiles(cfg).state.lock()
    holder.__enter__()  # every thread queues up behind it, then they all run at once
    threads = [threading.Thread(target=fail, args=(names[i % 4],)) for i in range(16)]
    for t in threads:
        t.start()
    threads[0].join(0.5)
    assert threads[0].is_alive()  # waiting for the lock
    holder.__exit__(None, None, None)
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == ["invalid user name or password"] * 16
    state = json.loads((auth.auth_dir(cfg) / auth.LOCKOUT_FILE).read_text())
    assert {n: len(state[n]["failures"]) for n in names} == {n: 4 for n in names}
    assert stat.S_IMODE((auth.auth_dir(cfg) / auth.LOCKOUT_FILE).stat().st_mode) == 0o600


# ---------------------------------------------------------------- first start, own passwords

def test_first_start_creates_one_one_time_admin(cfg):
    first = auth.ensure_initial_admin(cfg)
    assert first.created and first.user == "admin" and len(first.password) >= 16
    path = auth.initial_password_path(cfg)
    assert first.path == path and path.read_text().strip() == first.password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user = auth.authenticate(cfg, "admin", first.password)
    assert user.is_admin and user.must_change_password
    again = auth.ensure_initial_admin(cfg)  # pending: the same password, not created again
    assert not again.created and again.password == first.password
    assert first.password in first.console_text() and f"cat {path}" in first.console_text()
    assert f"{auth.python_command()} -m backup_core set-password admin" in first.console_text()
    entries = [e for e in audit.read(cfg.backup_root, limit=None) if e["action"] == "set-password"]
    assert len(entries) == 1 and entries[0]["initial"] is True and entries[0]["target"] == "admin"
    assert first.password not in _audit_text(cfg)


def test_no_one_time_admin_when_any_user_exists(cfg, tmp_path):
    auth.set_password(cfg, "alice", PW)
    assert auth.ensure_initial_admin(cfg) is None
    from_secrets = dataclasses.replace(cfg, backup_root=tmp_path / "other",
                                       secrets={"auth": {"users": {"bob": {"password_hash": auth.hash_password(PW)}}}})
    assert auth.ensure_initial_admin(from_secrets) is None
    assert not auth.initial_password_path(from_secrets).exists()


def test_concurrent_first_starts_make_one_password(cfg):
    results = []
    threads = [threading.Thread(target=lambda: results.append(auth.ensure_initial_admin(cfg))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len({r.password for r in results}) == 1
    assert list(json.loads(auth.users_path(cfg).read_text())["users"]) == ["admin"]


def test_changing_the_one_time_password_removes_its_file(cfg):
    first = auth.ensure_initial_admin(cfg)
    session = auth.authenticate(cfg, "admin", first.password)
    with pytest.raises(UsageError, match="different from the current one"):
        auth.change_password(cfg, session, first.password)
    new = auth.change_password(cfg, session, "my own password")  # no current password needed this once
    assert not new.must_change_password and new.fingerprint != session.fingerprint
    assert not auth.initial_password_path(cfg).exists()
    assert auth.ensure_initial_admin(cfg) is None
    assert auth.refresh(cfg, new).user == new  # the session that changed it stays open
    assert auth.refresh(cfg, session).reason == "password changed"  # any other one ends
    with pytest.raises(AuthError):
        auth.authenticate(cfg, "admin", first.password)
    assert not auth.authenticate(cfg, "admin", "my own password").must_change_password
    entry = audit.read(cfg.backup_root, 1, audit.AuditFilter(action="change-password"))[0]
    assert entry["initial"] is True and entry["initial_file_removed"] is True


def test_change_password_needs_the_current_one_afterwards(cfg):
    auth.set_password(cfg, "alice", PW, "viewer")
    session = auth.authenticate(cfg, "alice", PW)
    with pytest.raises(UsageError, match="current password"):
        auth.change_password(cfg, session, "new password 1")
    with pytest.raises(AuthError, match="current password is wrong"):
        auth.change_password(cfg, session, "new password 1", "not it at all")
    with pytest.raises(UsageError, match="too short"):
        auth.change_password(cfg, session, "short", PW)
    new = auth.change_password(cfg, session, "new password 1", PW)
    assert new.role == "viewer" and auth.authenticate(cfg, "alice", "new password 1").role == "viewer"
    assert [e["outcome"] for e in audit.read(cfg.backup_root, 4, audit.AuditFilter(action="change-password"))] \
        == ["ok", "error", "error", "error"]


def test_change_password_refuses_users_of_secrets_toml(cfg):
    secrets_cfg = dataclasses.replace(
        cfg, secrets={"auth": {"users": {"sam": {"password_hash": auth.hash_password(PW), "role": "admin"}}}})
    session = auth.authenticate(secrets_cfg, "sam", PW)
    with pytest.raises(UsageError, match="defined in secrets.toml"):
        auth.change_password(secrets_cfg, session, "new password 1", PW)
    assert not auth.users_path(cfg).exists()


def test_set_password_cli_for_admin_ends_the_one_time_password(cli_env, tmp_path):
    s = Settings(backup_root=tmp_path / "backups", user="x", secrets={})
    first = auth.ensure_initial_admin(s)
    proc = run_cli(cli_env, "set-password", "admin", input_text=PW + "\n")
    assert proc.returncode == 0, proc.stderr
    assert not first.path.exists()
    assert not auth.authenticate(s, "admin", PW).must_change_password


# ---------------------------------------------------------------- an object-store root

def test_users_and_lockouts_live_in_the_bucket_for_an_s3_root(s3_root, clock):
    """Dashboards on several hosts that share only the bucket see the same users and lock-outs."""
    from backup_core.store import open_store

    s3cfg = Settings(backup_root=s3_root, user="operator", secrets={})
    auth.set_password(s3cfg, "alice", PW)
    user = auth.authenticate(s3cfg, "alice", PW)
    assert user.is_admin and auth.refresh(s3cfg, user).user is user
    state = open_store(s3_root).state("auth")
    assert b"alice" in state.read(auth.USERS_FILE) and state.read(auth.USERS_FILE).count(b"$argon2") == 1
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(AuthError):
            auth.authenticate(s3cfg, "alice", "bad password")
    with pytest.raises(AuthError, match="locked"):
        auth.authenticate(s3cfg, "alice", PW)
    assert auth.refresh(s3cfg, user).reason == "locked"
    assert auth.unlock(s3cfg, "alice").was_locked
    assert auth.authenticate(s3cfg, "alice", PW).name == "alice"
    actions = [e["action"] for e in audit.read(s3_root, limit=None)]
    assert actions.count("login") >= 7 and "unlock" in actions and "set-password" in actions


def test_an_s3_first_start_keeps_only_the_hash_in_the_bucket(s3_root, s3_bucket):
    from backup_core.store.backend.s3 import client

    s3cfg = Settings(backup_root=s3_root, user="operator", secrets={})
    first = auth.ensure_initial_admin(s3cfg)
    assert first.created and first.path is None and first.read_command is None
    text = first.console_text()
    assert first.password in text and "stored nowhere" in text and "aws s3" not in text and "cat " not in text
    keys = [o["Key"] for o in client().list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert not [k for k in keys if k.endswith(auth.INITIAL_PASSWORD_FILE)]
    for key in keys:  # the password itself is in no object of the bucket
        assert first.password.encode() not in client().get_object(Bucket=s3_bucket, Key=key)["Body"].read(), key
    assert auth.authenticate(s3cfg, "admin", first.password).must_change_password
    pending = auth.ensure_initial_admin(s3cfg)  # still pending: said, but it cannot be shown again
    assert not pending.created and pending.password is None and pending.read_command is None
    assert "shown once" in pending.console_text() and "set-password admin" in pending.console_text()


def test_a_plain_text_password_an_older_version_left_in_the_bucket_is_removed(s3_root, s3_bucket):
    from backup_core.store import open_store

    s3cfg = Settings(backup_root=s3_root, user="operator", secrets={})
    first = auth.ensure_initial_admin(s3cfg)
    state = open_store(s3_root).state("auth")
    state.write(auth.INITIAL_PASSWORD_FILE, first.password.encode() + b"\n")  # as the older version did
    auth.ensure_initial_admin(s3cfg)
    assert state.read(auth.INITIAL_PASSWORD_FILE) is None
