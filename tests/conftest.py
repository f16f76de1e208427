"""Shared fixtures: one embedded server per test session, a fresh database per test.

``MONGODB_TEST_URI`` runs the same suite against a real MongoDB instead.
The embedded server runs with its memory engine (full BSON fidelity); the
SQLite engine is covered by tests/test_embedded.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from unittest import mock

import pymongo
import pytest
from hypothesis import HealthCheck, settings as hyp_settings

from backup_core import embedded
from backup_core.config import Settings
from backup_core.config import meta_name
from backup_core.store import LocalStore

ROOT = Path(__file__).resolve().parents[1]

hyp_settings.register_profile(
    "default", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
hyp_settings.register_profile("quick", max_examples=50, deadline=None,
                              suppress_health_check=list(HealthCheck))
hyp_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ARTIFACTS = ROOT / "test-artifacts"


start_memory_server = embedded.start_memory_server


@pytest.fixture(scope="session")
def mongo_uri():
    uri = os.environ.get("MONGODB_TEST_URI")
    if uri:
        yield uri
        return
    proc, uri = start_memory_server()
    yield uri
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def client(mongo_uri):
    c = pymongo.MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    yield c
    c.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server (a real HTTP endpoint) on 127.0.0.1 for the whole session; AWS_* point at it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        with mock.patch.dict(os.environ, S3_ENV, AWS_ENDPOINT_URL=url):
            wait_for_port(port)
            yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3_bucket(s3_endpoint):
    """A new, empty bucket for one test."""
    from backup_core.store.backend.s3 import client

    name = f"bkt-{uuid.uuid4().hex[:16]}"
    client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_root(s3_bucket):
    return f"s3://{s3_bucket}/backups"


@pytest.fixture
def db_name():
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(client, db_name):
    database = client[db_name]
    yield database
    client.drop_database(db_name)
    client.drop_database(meta_name(db_name))  # the swap-in registry of replace-restores


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "backups"
    r.mkdir()
    return r


@pytest.fixture
def store(root):
    return LocalStore(root)


@pytest.fixture
def settings(mongo_uri, db_name, root, tmp_path):
    return Settings(uri=mongo_uri, db_name=db_name, backup_root=root, data_dir=tmp_path / "data",
                    user="tester")


@pytest.fixture
def cli_env(mongo_uri, db_name, root):
    """Environment for running ``python -m backup_core`` against the test database."""
    env = dict(os.environ)
    env.update({"MONGODB_URI": mongo_uri, "MONGODB_DB": db_name, "BACKUP_ROOT": str(root)})
    return env


def run_cli(env, *args, input_text=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "backup_core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, input=input_text, timeout=timeout)


@pytest.fixture
def cli(cli_env):
    def _run(*args, **kw):
        return run_cli(cli_env, *args, **kw)
    return _run


def wait_for(cond, timeout: float, step: float = 0.05):
    """Poll ``cond()`` until it is truthy or ``timeout`` s passed; its last value (the test asserts it)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    return cond()


@pytest.fixture
def data(db):
    """A small database of the demo's shape."""
    db["Equipment"].insert_many([{"name": "drill", "qty": 2}, {"name": "saw", "qty": 1}])
    db["Equipment_select_options"].insert_one({"kind": "status", "values": ["ok", "broken"]})
    return db


@pytest.fixture
def services():
    """Scheduler services a test starts: stopped (and waited for) at its end."""
    started: list = []
    yield started
    for svc in started:
        svc.stop(wait=True)


@pytest.fixture
def procs():
    """Processes a test starts: killed at its end if still running (a stopped one is woken first)."""
    import signal

    started: list[subprocess.Popen] = []
    yield started
    for p in started:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            p.kill()
        p.wait(10)
