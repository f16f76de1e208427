"""Dashboard render time of the Restore and Browse pages with many backups (Streamlit AppTest).

500 small backups are made quickly: one real backup, then its folder copied
with new ids (one hour apart, so they spread over every weekday folder) and a
recomputed manifest (``backup_id``, ``created_at``, ``day_of_week``,
``manifest_sha256``). Each page is timed on its first render after
``switch_page`` with Streamlit's data cache cleared (cold listing) and on a rerun (warm).

``compare_page`` (run by ``scale_bench``): the Restore page with the
comparison of a large collection on screen; each rerun after a change of
page or filter is timed, and it checks that no rerun computed the
comparison again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from backup_core.backup import BackupOptions, create_backup
from backup_core.store import MANIFEST, LocalStore, backup_id_for, day_for, manifest_hash

from .common import ROOT, equipment_docs, insert_in_batches, log

PAGES = {"restore": "pages/2_Restore.py", "browse": "pages/4_Browse_Backups.py"}


def make_backups(store: LocalStore, template_id: str, n: int) -> None:
    template = store.folder(template_id)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for k in range(1, n):
        when = now - timedelta(hours=k)
        bid = backup_id_for(when)
        dest = store.root / day_for(when) / bid
        shutil.copytree(template, dest)
        manifest = json.loads((dest / MANIFEST).read_text())
        manifest.update(backup_id=bid, day_of_week=day_for(when),
                        created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                        trigger="scheduled" if k % 3 else "manual")
        manifest["manifest_sha256"] = manifest_hash(manifest)
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _render(page: str) -> tuple[float, float]:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from backup_core.auth import User

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["auth_user"] = User("admin", "admin")
    at.run()
    at.switch_page(page)
    st.cache_data.clear()  # cold: the page lists, parses and hash-checks all manifests itself
    t = time.perf_counter()
    at.run()
    cold = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception[0].value}")
    shown = [e.value for e in at.title]
    if not shown or not (at.selectbox or at.dataframe):
        raise RuntimeError(f"{page} did not render its backup list (titles {shown}, errors "
                           f"{[e.value for e in at.error]})")
    t = time.perf_counter()
    at.run()
    warm = time.perf_counter() - t
    return cold, warm


ENV_KEYS = ("MONGODB_URI", "MONGODB_DB", "BACKUP_ROOT", "EMBEDDED_DATA_DIR", "BACKUP_DASHBOARD_SCHEDULER",
            "BACKUP_SECRETS_FILE")


def compare_page(uri: str, db_name: str, root: Path, tmp: Path, backup_id: str | None = None) -> dict:
    """Open the Restore page on ``backup_id`` (default: the newest backup of ``root``), picked by its id,
    compare it with ``db_name``, then time reruns."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from backup_core import paged_compare
    from backup_core.auth import User

    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    cwd = os.getcwd()
    real = paged_compare.StoredComparison.compute.__func__  # type: ignore[attr-defined]
    calls: list[float] = []

    def counting(cls, *a, **kw):
        t = time.perf_counter()
        try:
            return real(cls, *a, **kw)
        finally:
            calls.append(time.perf_counter() - t)

    paged_compare.StoredComparison.compute = classmethod(counting)  # type: ignore[method-assign]
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        os.environ.update({"MONGODB_URI": uri, "MONGODB_DB": db_name, "BACKUP_ROOT": str(root),
                           "EMBEDDED_DATA_DIR": str(tmp / "data"), "BACKUP_DASHBOARD_SCHEDULER": "0",
                           "BACKUP_SECRETS_FILE": str(tmp / "no-secrets.toml")})
        os.chdir(ROOT)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
        at.session_state["auth_user"] = User("admin", "admin")
        at.run()
        at.switch_page(PAGES["restore"])
        st.cache_data.clear()
        at.run()
        if backup_id is not None:  # by id: a backup's label may change while the page is open
            at.selectbox(key="restore_backup").set_value(backup_id).run()
        t = time.perf_counter()
        at.button(key="restore_compare_btn").click().run()
        computed = time.perf_counter() - t
        _check(at, "compare")
        steps = {
            "page_2": lambda: at.number_input(key="restore_diff_page").set_value(2).run(),
            "page_3": lambda: at.number_input(key="restore_diff_page").set_value(3).run(),
            "status_changed": lambda: at.multiselect(key="restore_diff_status").set_value(["changed"]).run(),
            "status_all": lambda: at.multiselect(key="restore_diff_status").set_value(
                ["only_in_backup", "only_in_live", "changed"]).run(),
            "text_filter": lambda: at.text_input(key="restore_diff_text").input("EQ-00012").run(),
            "text_filter_page_1": lambda: at.number_input(key="restore_diff_page").set_value(1).run(),
            "text_cleared": lambda: at.text_input(key="restore_diff_text").input("").run(),
        }
        reruns = {}
        for name, step in steps.items():
            t = time.perf_counter()
            step()
            reruns[name] = round(time.perf_counter() - t, 3)
            _check(at, name)
        log(f"dashboard: compare page: computed in {computed:.1f}s, reruns {reruns}")
        return {"compare_page_rerender_s": max(reruns.values()), "compare_page_reruns_s": reruns,
                "compare_page_compute_s": round(computed, 2), "compare_page_computations": len(calls),
                "compare_page_recomputed": len(calls) != 1}
    finally:
        paged_compare.StoredComparison.compute = classmethod(real)  # type: ignore[method-assign]
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _check(at, step: str) -> None:
    if at.exception:
        raise RuntimeError(f"Restore page raised at {step}: {at.exception[0].value}")
    if at.error:
        raise RuntimeError(f"Restore page showed an error at {step}: {[e.value for e in at.error]}")
    if not any("Documents that differ" in m.value for m in at.markdown):
        raise RuntimeError(f"Restore page shows no differences at {step}")


def run(client, n: int = 500, db_name: str = "bench_dashboard") -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    saved = {k: os.environ.get(k) for k in ("MONGODB_URI", "MONGODB_DB", "BACKUP_ROOT", "EMBEDDED_DATA_DIR",
                                            "BACKUP_DASHBOARD_SCHEDULER", "BACKUP_SECRETS_FILE")}
    cwd = os.getcwd()
    try:
        client.drop_database(db_name)
        db = client[db_name]
        insert_in_batches(db["Equipment"], equipment_docs(100))
        db["Equipment_select_options"].insert_many([{"field": "status", "value": v} for v in ("a", "b", "c")])
        store = LocalStore(tmp / "root")
        first = create_backup(db, store, BackupOptions(user="bench"))
        t = time.perf_counter()
        make_backups(store, first.backup_id, n)
        log(f"dashboard: made {n} backups in {time.perf_counter() - t:.1f}s")
        assert len(store.list_backups()) == n
        host, port = client.address
        os.environ.update({"MONGODB_URI": f"mongodb://{host}:{port}/?directConnection=true",
                           "MONGODB_DB": db_name, "BACKUP_ROOT": str(store.root),
                           "EMBEDDED_DATA_DIR": str(tmp / "data"), "BACKUP_DASHBOARD_SCHEDULER": "0",
                           "BACKUP_SECRETS_FILE": str(tmp / "no-secrets.toml")})
        os.chdir(ROOT)
        out: dict = {"dashboard_backups": n}
        for name, page in PAGES.items():
            cold, warm = _render(page)
            out[f"{name}_page_render_s"] = round(cold, 3)
            out[f"{name}_page_rerender_s"] = round(warm, 3)
            log(f"dashboard: {name} page {cold:.2f}s cold, {warm:.2f}s rerun")
        return out
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        client.drop_database(db_name)
        shutil.rmtree(tmp, ignore_errors=True)
