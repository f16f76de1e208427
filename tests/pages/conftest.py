"""Fixtures for the dashboard's AppTest tests: env pointing at the test database, a seeded db, logged-in apps.

``make_app(role)`` builds ``AppTest.from_file("app.py")`` with
``session_state["auth_user"]`` already set (``role=None``: nobody logged in).
The in-process scheduler is off here (BACKUP_DASHBOARD_SCHEDULER=0): a
background thread taking backups would make the page tests flaky; the
scheduler has its own tests.
"""

from __future__ import annotations

import datetime as dt

import pytest
from bson import Decimal128, ObjectId
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 30


@pytest.fixture
def page_env(monkeypatch, mongo_uri, db_name, root, tmp_path):
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("MONGODB_DB", db_name)
    monkeypatch.setenv("BACKUP_ROOT", str(root))
    monkeypatch.setenv("EMBEDDED_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BACKUP_DASHBOARD_SCHEDULER", "0")
    monkeypatch.setenv("BACKUP_SECRETS_FILE", str(tmp_path / "no-secrets.toml"))
    for name in ("BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH", "BACKUP_DEMO_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    return {"uri": mongo_uri, "db": db_name, "root": root}


@pytest.fixture
def seeded(db, page_env):
    """Two small collections; the second has searchable text in nested fields."""
    db["Equipment"].insert_many([
        {"_id": ObjectId(), "name": f"Pump {i}", "serial": f"SN-{i:04d}", "price": Decimal128(f"{i}.50"),
         "bought": dt.datetime(2024, 1, 1 + i % 28), "specs": {"maker": "Acme" if i % 3 else "Zenith",
                                                               "tags": ["a", str(i)]}}
        for i in range(60)])
    db["Equipment_select_options"].insert_many([{"field": "status", "value": v}
                                                for v in ("active", "broken", "retired")])
    return db


@pytest.fixture
def make_app(page_env):
    def _make(role: str | None = "admin", name: str | None = None) -> AppTest:
        from backup_core.auth import User

        at = AppTest.from_file(APP, default_timeout=TIMEOUT)
        if role is not None:
            at.session_state["auth_user"] = User(name or role, role)
        return at
    return _make


@pytest.fixture
def open_page(make_app, request):
    """Log in with ``role`` and open the test module's ``PAGE``; fails on any exception."""
    page = request.module.PAGE

    def _open(role: str = "admin") -> AppTest:
        at = run_page(make_app(role), page)
        assert not at.exception, at.exception
        return at
    return _open


def values(at: AppTest, kind: str) -> str:
    """The values of all elements of one kind (``"info"``, ``"error"``, ...), one per line."""
    return "\n".join(str(e.value) for e in getattr(at, kind))


def run_page(at: AppTest, page: str | None = None) -> AppTest:
    """Run the app once (registers the pages), then switch to ``page`` and run it."""
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def texts(at: AppTest) -> str:
    """All the markdown, captions, alerts and titles on the page, as one string."""
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label}: {m.value}" for m in at.metric]
    return "\n".join(parts)


def make_backup(db, root, collections=None, user="tester"):
    from backup_core.backup import BackupOptions, create_backup
    from backup_core.store import LocalStore

    return create_backup(db, LocalStore(root), BackupOptions(collections=collections, user=user))


def frame_with(at: AppTest, column: str):
    """The first dataframe on the page that has ``column`` (dataframes carry no key in AppTest)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    raise AssertionError(f"no dataframe with a column {column!r}")


def forged_click(at: AppTest, button) -> AppTest:
    """Click ``button`` even if it is disabled: what a hand-made websocket message can do, which the
    browser's disabled button does not prevent. The server must refuse on its own."""
    button._value = True  # AppTest's click() refuses disabled widgets, as a browser does
    return at.run()


def undo_latest(at: AppTest, db_name: str, prefix: str = "") -> AppTest:
    """Undo the latest restore as an admin does: Undo (the dry run), type the database name, Undo now."""
    at.button(key=f"{prefix}restore_undo_btn").click().run()
    assert not at.exception, at.exception
    at.text_input(key=f"{prefix}restore_undo_confirm_text").set_value(db_name).run()
    at.button(key=f"{prefix}restore_undo_run_btn").click().run()
    return at
