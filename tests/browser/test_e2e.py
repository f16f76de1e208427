"""End to end in a real Chromium: log in, back up, change live data, compare, restore, undo, drill.

The dashboard is started the way ``make run`` starts it (``streamlit run
app.py`` on the embedded default, MONGODB_URI unset) in temporary data and
backup folders, with ``BACKUP_DEMO_ADMIN_PASSWORD`` so the first start
creates the ``admin`` user. Live data is changed behind the dashboard's back
with pymongo, through the embedded server's URI from ``server.json``.
A screenshot of every page goes to ``test-artifacts/screenshots/``.

Without Chromium the test is skipped, unless ``REQUIRE_BROWSER_TESTS=1``
(CI), where a missing browser is a failure.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "e2e-secret-pw-42"
DB = "equipment_db"
WAIT_MS = 60_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing(reason: str):
    if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
        pytest.fail(f"{reason} (REQUIRE_BROWSER_TESTS=1 forbids skipping)")
    pytest.skip(reason)


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        _missing("chromium not installed: apt-get install chromium")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the dashboard did not become healthy in {timeout}s:\n{log.read_text()[-3000:]}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def streamlit_app(script: str, env: dict, data_dir: Path, log: Path) -> Iterator[str]:
    """``streamlit run script`` on a free port with ``env``, until the block ends (then it and the embedded
    server it started in ``data_dir`` are stopped); yields its URL."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        server = data_dir / "server.json"
        if server.is_file():  # the embedded server was started detached by the dashboard
            _kill(int(json.loads(server.read_text())["pid"]))


@pytest.fixture
def dashboard(tmp_path):
    """The dashboard as ``make run`` starts it, in temporary folders; yields (url, data_dir, root)."""
    _chromium()
    data_dir, root = tmp_path / "data", tmp_path / "backups"
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "MONGODB_DB", "BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH")}
    env.update({"EMBEDDED_DATA_DIR": str(data_dir), "BACKUP_ROOT": str(root),
                "BACKUP_DEMO_ADMIN_PASSWORD": PASSWORD,
                "BACKUP_SECRETS_FILE": str(tmp_path / "no-secrets.toml")})
    with streamlit_app("app.py", env, data_dir, tmp_path / "streamlit.log") as url:
        yield url, data_dir, root


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(400)  # let the last rerun paint
    # Streamlit scrolls inside its main container, so grow the viewport to the content instead
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll("
                           "'[data-testid=\"stMain\"], [data-testid=\"stMainBlockContainer\"]')]"
                           ".map(e => e.scrollHeight), 0)")
    page.set_viewport_size({"width": 1400, "height": min(6000, max(900, int(height) + 40))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})


def _wait_idle(page) -> None:
    """Wait until Streamlit has finished the current rerun (its status widget disappears)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.match(/Running|Stop/)",
        timeout=WAIT_MS)
    # elements of the previous run stay greyed out (data-stale) until the new run replaces them
    page.wait_for_function("() => !document.querySelector('[data-stale=\"true\"]')", timeout=WAIT_MS)


def _goto(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=WAIT_MS)
    _wait_idle(page)


def _undo_latest(page, shot=None) -> None:
    """Undo the latest restore as an admin does: Undo (the dry run, counts per collection), the database name
    typed, Undo now. ``shot``: a function that screenshots the confirmation."""
    page.get_by_role("button", name="Undo", exact=True).click()
    page.get_by_text("Dry run: this is exactly what the undo will do").wait_for()
    _wait_idle(page)
    box = page.get_by_role("textbox", name="to confirm the undo")
    box.fill(DB)
    box.press("Enter")
    _wait_idle(page)
    page.wait_for_function("() => [...document.querySelectorAll('button')].some("
                           "b => b.innerText.trim() === 'Undo now' && !b.disabled)")
    if shot is not None:
        shot()
    page.get_by_role("button", name="Undo now", exact=True).click()
    page.get_by_text(re.compile(r"^Undone: ")).first.wait_for()
    _wait_idle(page)


def _live_db(data_dir: Path):
    import pymongo

    uri = json.loads((data_dir / "server.json").read_text())["uri"]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    return client, client[DB]


def test_backup_compare_restore_undo(dashboard):
    from playwright.sync_api import sync_playwright

    url, data_dir, root = dashboard
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_MS)
            try:
                _scenario(page, url, data_dir)
            except Exception:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "failure.png"), full_page=True)
                log = data_dir.parent / "streamlit.log"
                print(f"streamlit log:\n{log.read_text()[-4000:] if log.is_file() else '(none)'}")
                raise
        finally:
            browser.close()


def _scenario(page, url: str, data_dir: Path) -> None:
    """The user's journey; the caller screenshots and prints the log when it fails."""
    page.goto(url)

    # log in (one reload if the first page load stalls, e.g. the websocket connected too early)
    user_box = page.get_by_role("textbox", name="User", exact=True)
    try:
        user_box.wait_for(timeout=30_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError
        page.reload()
        user_box.wait_for()
    user_box.fill("admin")
    page.get_by_role("textbox", name="Password", exact=True).fill(PASSWORD)
    _shot(page, "01_login")
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Logged in as").wait_for()
    page.get_by_role("heading", name="Database").wait_for()  # the home page has rendered
    _wait_idle(page)
    _shot(page, "02_home")

    # create a backup
    _goto(page, "Create Backup")
    page.get_by_role("button", name="Create backup").click()
    page.get_by_text("created in").first.wait_for()
    _wait_idle(page)
    _shot(page, "03_create_backup")

    # change live data behind the dashboard's back
    client, db = _live_db(data_dir)
    try:
        coll = db["Equipment"]
        docs = list(coll.find({}, sort=[("_id", 1)], limit=2))
        assert len(docs) == 2, "the embedded demo data should have been seeded"
        changed_id, deleted_id = docs[0]["_id"], docs[1]["_id"]
        coll.update_one({"_id": changed_id}, {"$set": {"e2e_marker": "changed live"}})
        deleted_doc = coll.find_one({"_id": deleted_id})
        coll.delete_one({"_id": deleted_id})
        coll.insert_one({"_id": "e2e-new", "name": "added after the backup"})
        before = coll.count_documents({})

        # compare on the Restore page
        _goto(page, "Restore")
        page.get_by_role("button", name="Compare with live data").click()
        page.get_by_text("Documents that differ").wait_for()
        page.get_by_text("Compared at").wait_for()
        page.get_by_text("Documents 1–3 (last page)").wait_for()  # one added, one deleted, one changed
        _wait_idle(page)
        _shot(page, "04_restore_compare")

        # replace restore, enabled only by typing the database name
        restore_btn = page.get_by_role("button", name=f"Restore into {DB}")
        assert restore_btn.is_disabled()
        box = page.get_by_role("textbox", name="Type the database name")
        box.fill(DB)
        box.press("Enter")
        _wait_idle(page)
        page.wait_for_function(
            "name => [...document.querySelectorAll('button')].some("
            "b => b.innerText.includes(name) && !b.disabled)", arg=f"Restore into {DB}")
        restore_btn.click()
        page.get_by_text("Safety backup:").wait_for()
        _wait_idle(page)
        _shot(page, "05_restore_done")
        assert restore_btn.is_disabled(), "the typed confirmation should be cleared after a restore"
        assert coll.find_one({"_id": "e2e-new"}) is None
        assert coll.find_one({"_id": deleted_id}) == deleted_doc
        assert "e2e_marker" not in coll.find_one({"_id": changed_id})

        # undo brings the live data back to what it was before the restore, after a dry run and the name typed
        assert coll.find_one({"_id": "e2e-new"}) is None
        _undo_latest(page, shot=lambda: _shot(page, "06_undo_confirm"))
        _shot(page, "06_restore_undone")
        assert coll.find_one({"_id": "e2e-new"}) is not None
        assert coll.find_one({"_id": deleted_id}) is None
        assert coll.find_one({"_id": changed_id})["e2e_marker"] == "changed live"
        assert coll.count_documents({}) == before
    finally:
        client.close()

    for n, title in enumerate(("Auto Backup", "Browse Backups", "Audit Log"), start=7):
        _goto(page, title)
        _shot(page, f"{n:02d}_{title.lower().replace(' ', '_')}")
        assert not page.locator('[data-testid="stException"]').count(), f"{title} shows a traceback"

    # a restore drill of the backup from Browse Backups; Home then names it as proven restorable
    _goto(page, "Browse Backups")
    page.get_by_role("button", name="Drill now").click()
    page.get_by_text("every document, index and option matched the backup").wait_for()
    _wait_idle(page)
    _shot(page, "10_browse_drill")
    assert page.get_by_text("✓ passed").count()
    page.locator('[data-testid="stSidebarNav"] a', has_text="Home").first.click()
    page.get_by_text("Last proven restorable:").wait_for()
    _wait_idle(page)
    _shot(page, "11_home_drill")
    assert not page.locator('[data-testid="stException"]').count(), "Home shows a traceback"
