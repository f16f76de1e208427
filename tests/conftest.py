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

import pymongo
import pytest
from hypothesis import HealthCheck, settings as hyp_settings

from backup_core import embedded
from backup_core.config import Settings
from backup_core.staging import meta_name
from backup_core.store import LocalStore

ROOT = Path(__file__).resolve().parents[1]

hyp_settings.register_profile(
    "default", max_examples=500, deadline=None,
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


@pytest.fixture
def db_name():
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def db(client, db_name):
    database = client[db_name]
    yield database
    client.drop_database(db_name)
    client.drop_database(meta_name(db_name))  # the staging registry of replace-restores


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
