"""A fresh first start in a real Chromium, as a new admin meets it.

``make run`` starts the dashboard on the embedded default in temporary data
and backup folders, with no user configured. The test reads the one-time
admin password from the console (as the admin would), logs in with it, must
choose a new password, then goes through the main story: back up, add a
collection with CJK names and values behind the dashboard's back, back up
again, compare, restore, undo, browse (table and JSON), audit, change the
password again. Every page is screenshotted to
``test-artifacts/screenshots/first_start_*.png``. Finally Ctrl-C (SIGINT to
the process group) stops the dashboard, and the embedded server it started
for itself must stop too; the console must stay short (no file-watcher
flood) the whole time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.test_e2e import (CHROMIUM_ARGS, SHOTS, WAIT_MS, _chromium, _free_port, _goto, _kill, _shot,
                                    _undo_latest, _wait_healthy, _wait_idle)

ROOT = Path(__file__).resolve().parents[2]
DB = "equipment_db"
NEW_PASSWORD = "my-own-admin-pw-1"
CJK_COLLECTION = "設備_备品"
CJK_DOCS = [
    {"_id": "cjk-1", "名前": "顕微鏡 オリンパス", "場所": "東京都 第3研究棟", "备注": "需要每月校准一次", "数量": 2},
    {"_id": "cjk-2", "名前": "원심분리기", "場所": "서울 본관 2층", "备注": "冷藏离心机 — 已校准", "数量": 1},
]
# the console of a whole session: the URL, the first-login hint, a few lines; never a watcher flood
MAX_CONSOLE_BYTES = 8_000


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _inotify_instances(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                count += 1
        except OSError:
            pass
    return count


def _streamlit_pid(make_pid: int) -> int | None:
    """The ``streamlit run`` process under ``make run``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            if b"streamlit" in args and b"run" in args and os.getpgid(int(entry.name)) == make_pid:
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return None


@pytest.fixture
def fresh_dashboard(tmp_path):
    """``make run`` in temporary folders with no user anywhere; yields (url, proc, console log, data dir)."""
    _chromium()
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    data_dir, root = tmp_path / "data", tmp_path / "backups"
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "MONGODB_DB", "BACKUP_ADMIN_USER", "BACKUP_ADMIN_PASSWORD_HASH",
                        "BACKUP_DEMO_ADMIN_PASSWORD", "MAKEFLAGS", "MAKELEVEL")}
    env.update({"EMBEDDED_DATA_DIR": str(data_dir), "BACKUP_ROOT": str(root),
                "BACKUP_SECRETS_FILE": str(tmp_path / "no-secrets.toml")})
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        # `make run` exactly, with the interpreter running the tests and its set-up taken as done
        # (-o setup: make test has just done it; no pip install in the middle of a test)
        proc = subprocess.Popen(["make", "--no-print-directory", "-o", "setup", "run", f"PORT={port}",
                                 f"PY={sys.executable}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/_stcore/health", proc, log)
        yield f"http://127.0.0.1:{port}", proc, log, data_dir
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)
        server = data_dir / "server.json"
        if server.is_file():
            _kill(int(json.loads(server.read_text())["pid"]))


def _one_time_password(log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"^\s*password:\s+(\S+)\s*$", log.read_text(errors="replace"), re.M)
        if m:
            return m.group(1)
        time.sleep(0.2)
    raise AssertionError(f"no one-time password on the console:\n{log.read_text()[-3000:]}")


def _go(page, title: str) -> None:
    """Open a page from the sidebar (Home's heading is the app's name, not "Home")."""
    if title != "Home":
        _goto(page, title)
        return
    page.locator('[data-testid="stSidebarNav"] a', has_text="Home").first.click()
    page.get_by_role("heading", name="MongoDB Backup & Restore").first.wait_for(timeout=WAIT_MS)
    _wait_idle(page)


def _choose(page, label: str, option) -> None:
    """Pick ``option`` in the selectbox ``label`` (again if a rerun closed its list under the click)."""
    for attempt in range(4):
        page.get_by_role("combobox", name=label, exact=True).click()
        try:
            page.get_by_role("option", name=option).first.click(timeout=5_000)
            break
        except Exception:  # noqa: BLE001 - playwright's TimeoutError
            if attempt == 3:
                raise
            page.keyboard.press("Escape")
            _wait_idle(page)
    _wait_idle(page)


def _shot_as(page, name: str) -> None:
    _shot(page, f"first_start_{name}")


def test_fresh_first_start_to_restore_and_clean_stop(fresh_dashboard):
    from playwright.sync_api import sync_playwright

    url, proc, log, data_dir = fresh_dashboard
    console_at_start = log.read_text(errors="replace")
    password = _one_time_password(log)
    path_line = re.search(r"^\s*cat (\S+initial_admin_password)\s*$", console_at_start, re.M)
    assert path_line, console_at_start
    assert Path(path_line.group(1)).read_text().strip() == password
    assert "First start" in console_at_start and "Local URL" in console_at_start

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, timezone_id="Asia/Tokyo")
            page.set_default_timeout(WAIT_MS)
            try:
                _story(page, url, data_dir, password)
            except Exception:
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / "first_start_failure.png"), full_page=True)
                print(f"console:\n{log.read_text(errors='replace')[-4000:]}")
                raise
        finally:
            browser.close()

    # no file watcher: nothing to flood the console, and no inotify instance in the dashboard
    streamlit = _streamlit_pid(proc.pid)
    assert streamlit is not None
    assert _inotify_instances(streamlit) == 0, "Streamlit's file watcher is running (see .streamlit/config.toml)"

    # Ctrl-C: the dashboard stops, and so does the embedded server it started for itself
    server_pid = json.loads((data_dir / "server.json").read_text())["pid"]
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait(30)
    deadline = time.monotonic() + 20
    while _pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _pid_alive(server_pid), "the embedded server outlived the dashboard that started it"
    assert not (data_dir / "server.json").exists()

    console = log.read_text(errors="replace")
    print(f"console ({len(console.encode())} bytes):\n{console}")
    assert len(console.encode()) < MAX_CONSOLE_BYTES, console[-3000:]
    for noise in ("RuntimeWarning", "Inotify", "Traceback", "watchdog"):
        assert noise not in console, f"{noise!r} on the console:\n{console[-3000:]}"
    assert console.count("First start") == 1, "the hint is printed once"


def _story(page, url: str, data_dir: Path, one_time: str) -> None:
    page.goto(url)
    user_box = page.get_by_role("textbox", name="User", exact=True)
    try:
        user_box.wait_for(timeout=30_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: reload once if the first load stalled
        page.reload()
        user_box.wait_for()
    page.get_by_text("First start.").wait_for()
    _wait_idle(page)
    _shot_as(page, "01_login_hint")
    assert one_time not in page.content(), "the one-time password must never reach the browser"

    # log in with the one-time password: a new password comes first
    user_box.fill("admin")
    page.get_by_role("textbox", name="Password", exact=True).fill(one_time)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name="Choose your password").wait_for()
    _wait_idle(page)
    _shot_as(page, "02_choose_password")
    page.get_by_label("New password (at least 8 characters)").fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.get_by_role("heading", name="Database").wait_for()  # Home
    _wait_idle(page)
    _shot_as(page, "03_home")
    assert not Path(data_dir.parent / "backups" / ".auth" / "initial_admin_password").exists()

    # first backup, with progress per collection
    _go(page, "Create Backup")
    page.get_by_role("button", name="Create backup").click()
    page.get_by_text("created in").first.wait_for()
    _wait_idle(page)
    assert page.get_by_text(re.compile(r"Equipment: 150 / 150 documents · done in")).count() == 1
    _shot_as(page, "04_create_backup")

    # behind the dashboard's back: a CJK collection and a changed document
    import pymongo

    uri = json.loads((data_dir / "server.json").read_text())["uri"]
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
    try:
        db = client[DB]
        db[CJK_COLLECTION].insert_many([dict(d) for d in CJK_DOCS])
        first = db["Equipment"].find_one(sort=[("_id", 1)])
        db["Equipment"].update_one({"_id": first["_id"]}, {"$set": {"name": "変更された名前 (changed)"}})

        # second backup, now with the CJK collection (a fresh visit of the page selects every collection)
        _go(page, "Home")
        _go(page, "Create Backup")
        page.get_by_role("button", name="Create backup").click()
        page.get_by_text("created in").first.wait_for()
        _wait_idle(page)
        page.get_by_text(re.compile(f"{CJK_COLLECTION}: 2 / 2 documents")).wait_for()

        _go(page, "Home")
        page.get_by_role("heading", name="Backups over time").wait_for()
        _wait_idle(page)
        page.wait_for_timeout(800)  # the charts draw after the run
        _shot_as(page, "05_home_two_backups")
        assert page.get_by_text("Asia/Tokyo, UTC+09:00").count() >= 1  # the browser's zone, stated

        # compare the first backup with live data, restore it, undo
        _go(page, "Restore")
        _choose(page, "Backup", re.compile(r"manual · 195 docs"))  # the first manual backup
        page.get_by_role("button", name="Compare with live data").click()
        page.get_by_text("Compared at").wait_for()
        _wait_idle(page)
        _shot_as(page, "06_restore_compare")
        box = page.get_by_role("textbox", name="Type the database name")
        box.fill(DB)
        box.press("Enter")
        _wait_idle(page)
        restore_btn = page.get_by_role("button", name=f"Restore into {DB}")
        page.wait_for_function(
            "name => [...document.querySelectorAll('button')].some("
            "b => b.innerText.includes(name) && !b.disabled)", arg=f"Restore into {DB}")
        restore_btn.click()
        page.get_by_text("Safety backup:").wait_for()
        _wait_idle(page)
        _shot_as(page, "07_restore_done")
        assert db["Equipment"].find_one({"_id": first["_id"]})["name"] == first["name"]
        _undo_latest(page)
        assert db["Equipment"].find_one({"_id": first["_id"]})["name"] == "変更された名前 (changed)"
        assert db[CJK_COLLECTION].count_documents({}) == 2
    finally:
        client.close()

    # browse the CJK collection of the second manual backup (the newest ones are the restore's safety
    # backups): table, then JSON
    _go(page, "Browse Backups")
    _choose(page, "Backup", re.compile(r"manual · 197 docs"))
    _choose(page, "Collection", re.compile(CJK_COLLECTION))
    page.get_by_text("Documents 1–2 of 2").wait_for()
    _shot_as(page, "08_browse_cjk_table")
    page.get_by_text("Show as JSON").click()
    _wait_idle(page)
    page.get_by_text(re.compile(r"^1\. cjk-1")).first.click()
    _wait_idle(page)
    page.get_by_text("顕微鏡 オリンパス").first.wait_for()
    _shot_as(page, "09_browse_cjk_json")

    _go(page, "Audit Log")
    page.get_by_role("heading", name="Entry").wait_for()
    _wait_idle(page)
    # selecting the third row of the table (one row per operation) shows its entries in full below it
    from backup_core import audit
    from backup_core.audit_operations import operations

    third = operations(audit.read(data_dir.parent / "backups", None))[2]
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.click(position={"x": 15, "y": 35 * 3 + 17})  # the selection column of row 3 (row 0: header)
    _wait_idle(page)
    page.get_by_text(f"seq: {third.seq}", exact=True).wait_for()
    _shot_as(page, "10_audit_log")

    _go(page, "Auto Backup")
    _shot_as(page, "11_auto_backup")

    _go(page, "Change password")
    _shot_as(page, "12_change_password")

    for title in ("Home", "Create Backup", "Restore", "Auto Backup", "Browse Backups", "Audit Log",
                  "Change password"):
        _go(page, title)
        assert not page.locator('[data-testid="stException"]').count(), f"{title} shows a traceback"
