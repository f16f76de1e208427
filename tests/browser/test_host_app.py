"""The backup tab inside a host app, in a real Chromium: the host's admin backs up, restores and undoes;
the host's viewer is shown no restore control.

``examples/host_app.py`` is started with ``streamlit run`` on the embedded
default in temporary folders, with two host accounts. Screenshots go to
``test-artifacts/screenshots/host_*.png``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.browser.test_e2e import (CHROMIUM_ARGS, streamlit_app, SHOTS, WAIT_MS, _chromium, _shot,
                                    _undo_latest, _wait_idle)

ROOT = Path(__file__).resolve().parents[2]
DB = "equipment_db"
USERS = "hana:hana-host-pw:admin,vera:vera-host-pw:viewer"


@pytest.fixture
def host_app(tmp_path):
    _chromium()
    data_dir, root = tmp_path / "data", tmp_path / "backups"
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "MONGODB_DB")}
    env.update({"EMBEDDED_DATA_DIR": str(data_dir), "BACKUP_ROOT": str(root), "HOST_APP_USERS": USERS,
                "BACKUP_SECRETS_FILE": str(tmp_path / "no-secrets.toml")})
    log = tmp_path / "streamlit.log"
    with streamlit_app("examples/host_app.py", env, data_dir, log) as url:
        yield url, data_dir, log


def _sign_in(page, url: str, name: str, password: str) -> None:
    page.goto(url)
    box = page.get_by_role("textbox", name="User name", exact=True)
    try:
        box.wait_for(timeout=30_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: one reload if the first load stalled
        page.reload()
        box.wait_for()
    box.fill(name)
    page.get_by_role("textbox", name="Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"Signed in as {name}").wait_for()
    _wait_idle(page)


def _backup_tab(page, section: str) -> None:
    page.get_by_role("tab", name="Backup & Restore").click()
    _wait_idle(page)
    page.locator('[data-testid="stRadio"] label', has_text=section).first.click()
    _wait_idle(page)


def test_host_admin_backs_up_restores_undoes_and_a_viewer_cannot_restore(host_app):
    from playwright.sync_api import sync_playwright

    url, data_dir, log = host_app
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            try:
                _scenario(page, url, data_dir)
            except Exception:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "host_failure.png"), full_page=True)
                print(f"streamlit log:\n{log.read_text()[-4000:]}")
                raise
        finally:
            browser.close()


def _scenario(page, url: str, data_dir: Path) -> None:
    import pymongo

    _sign_in(page, url, "hana", "hana-host-pw")
    page.get_by_role("tab", name="Equipment").wait_for()
    _shot(page, "host_01_equipment")
    _backup_tab(page, "Create Backup")
    page.get_by_role("button", name="Create backup").click()
    page.get_by_text("created in").first.wait_for()
    _wait_idle(page)
    _shot(page, "host_02_backup")

    client = pymongo.MongoClient(json.loads((data_dir / "server.json").read_text())["uri"],
                                 serverSelectionTimeoutMS=10_000)
    try:
        coll = client[DB]["Equipment"]
        before = coll.count_documents({})
        gone = coll.find_one(sort=[("_id", 1)])
        coll.delete_one({"_id": gone["_id"]})

        _backup_tab(page, "Restore")
        box = page.get_by_role("textbox", name="Type the database name")
        box.fill(DB)
        box.press("Enter")
        _wait_idle(page)
        page.wait_for_function("name => [...document.querySelectorAll('button')].some("
                               "b => b.innerText.includes(name) && !b.disabled)", arg=f"Restore into {DB}")
        page.get_by_role("button", name=f"Restore into {DB}").click()
        page.get_by_text("Safety backup:").first.wait_for()
        _wait_idle(page)
        _shot(page, "host_03_restored")
        assert coll.count_documents({}) == before and coll.find_one({"_id": gone["_id"]}) == gone

        _undo_latest(page)
        _shot(page, "host_04_undone")
        assert coll.count_documents({}) == before - 1 and coll.find_one({"_id": gone["_id"]}) is None
    finally:
        client.close()
    assert not page.locator('[data-testid="stException"]').count()

    # the host's viewer: the same tab, no control that changes data
    page.get_by_role("button", name="Sign out").click()
    _wait_idle(page)
    _sign_in(page, url, "vera", "vera-host-pw")
    _backup_tab(page, "Restore")
    page.get_by_role("button", name="Compare with live data").wait_for()
    page.get_by_text("Restoring needs the admin role").wait_for()
    _shot(page, "host_05_viewer_restore")
    for name in (f"Restore into {DB}", "Preview (dry run)", "Undo", "Import this backup"):
        assert page.get_by_role("button", name=name).count() == 0, f"a viewer sees {name!r}"
    assert not page.locator('[data-testid="stException"]').count()
