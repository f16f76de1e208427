"""Home: connection, collections, last backup, scheduler state, warnings, charts; fast with 500 backups."""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone

from backup_core import scheduler
from backup_core.store import MANIFEST, LocalStore, backup_id_for, day_for, manifest_hash
from tests.pages.conftest import frame_with, make_backup, run_page, texts


def _age_backup(store: LocalStore, backup_id: str, hours: float) -> str:
    """Rewrite a backup as if it had been made ``hours`` ago (new id, folder and manifest hash)."""
    info = store.get(backup_id)
    when = datetime.now(timezone.utc) - timedelta(hours=hours)
    new_id = backup_id_for(when)
    manifest = dict(info.manifest.data)
    manifest.update(backup_id=new_id, created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    day_of_week=day_for(when))
    manifest["manifest_sha256"] = manifest_hash(manifest)
    target = store.root / day_for(when) / new_id
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(store.folder(backup_id), target)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return new_id


def test_home_shows_database_and_last_backup(seeded, make_app, root):
    result = make_backup(seeded, root)
    at = run_page(make_app("viewer"))
    assert not at.exception
    body = texts(at)
    assert seeded.name in body and "external MongoDB" in body
    assert "127.0.0.1" in body
    colls = frame_with(at, "collection")
    assert dict(zip(colls["collection"], colls["documents"])) == {"Equipment": 60, "Equipment_select_options": 3}
    assert result.backup_id in body
    assert "Last backup: just now" in body
    assert "Backup storage" in body
    assert len(at.get("vega_lite_chart")) == 3  # size, documents and storage over time
    assert "Storage over time" in body
    per_coll = frame_with(at, "actually stored")
    assert set(per_coll["collection"]) == {"Equipment", "Equipment_select_options"}
    assert not at.warning


def test_home_masks_the_uri_password(seeded, make_app, monkeypatch, mongo_uri):
    # a password in the URI must never be shown (the connection fails here: the user does not exist)
    monkeypatch.setenv("MONGODB_URI", mongo_uri.replace("mongodb://", "mongodb://bob:s3cret@"))
    at = run_page(make_app("admin"))
    assert not at.exception
    assert "s3cret" not in texts(at)


def test_home_warns_when_last_backup_is_old_and_last_run_failed(seeded, make_app, root):
    store = LocalStore(root)
    old = _age_backup(store, make_backup(seeded, root).backup_id, hours=5)  # default interval 1 h
    scheduler.append_history(root, scheduler.history_entry(
        "backup", "scheduled", datetime.now(timezone.utc), 0.1, "error", error="disk full"))
    at = run_page(make_app("admin"))
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "The last backup is 5h 0m old, more than 2 times the 1 h backup interval" in warnings
    assert "last scheduled backup failed: disk full" in warnings
    assert old in texts(at)


def test_home_without_backups_says_so(seeded, make_app):
    at = run_page(make_app("admin"))
    assert not at.exception
    assert any("no backup yet" in w.value for w in at.warning)
    assert "Last backup: never" in texts(at)


def test_home_reports_an_unreachable_database_without_traceback(make_app, monkeypatch):
    monkeypatch.setenv("MONGODB_URI", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")
    at = run_page(make_app("admin"))
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "cannot reach MongoDB" in errors and "Traceback" not in errors


def test_home_fast_with_500_backups(seeded, make_app, root):
    store = LocalStore(root)
    first = store.get(make_backup(seeded, root).backup_id)
    start = datetime.now(timezone.utc) - timedelta(days=6)
    for i in range(499):
        when = start + timedelta(minutes=17 * i)
        new_id = backup_id_for(when)
        target = root / day_for(when) / new_id
        shutil.copytree(store.folder(first.backup_id), target)
        manifest = dict(first.manifest.data)
        manifest.update(backup_id=new_id, created_at=when.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        manifest["manifest_sha256"] = manifest_hash(manifest)
        (target / MANIFEST).write_text(json.dumps(manifest))
    assert len(store.list_backups()) == 500
    at = make_app("admin")
    t0 = time.monotonic()
    at.run()
    cold = time.monotonic() - t0
    t0 = time.monotonic()
    at.run()
    warm = time.monotonic() - t0
    assert not at.exception
    assert "500 backups" in " ".join(str(m.help) for m in at.metric)
    assert cold < 10, cold
    assert warm < 3, warm  # the listing is cached until the backup root changes
    at.switch_page("pages/4_Browse_Backups.py")
    t0 = time.monotonic()
    at.run()
    assert not at.exception
    assert time.monotonic() - t0 < 5
    assert len(frame_with(at, "backup")) > 0


def test_scheduler_failure_is_a_warning_not_a_crash(seeded, make_app, monkeypatch):
    def boom(settings):
        raise RuntimeError("lease directory not writable")

    monkeypatch.setenv("BACKUP_DASHBOARD_SCHEDULER", "1")
    monkeypatch.setattr(scheduler, "ensure_scheduler", boom)
    at = run_page(make_app("admin"))
    assert not at.exception
    assert any("lease directory not writable" in w.value for w in at.sidebar.warning)


# ---------------------------------------------------------------- charts and storage

def _chart_specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def _x(spec: dict) -> dict:
    return spec["layer"][0]["encoding"]["x"]


def test_home_charts_have_a_real_time_axis_in_a_stated_zone(seeded, make_app, root, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the dashboard server's zone (AppTest has no browser to ask)
    time.tzset()
    try:
        info = LocalStore(root).get(make_backup(seeded, root).backup_id)
        at = run_page(make_app("viewer"))
        assert not at.exception
        specs = _chart_specs(at)
        assert len(specs) == 3  # size, documents and storage over time
        for n, spec in enumerate(specs):
            x = _x(spec)
            assert x["type"] == "temporal" and x["scale"]["type"] == "utc"
            assert x["title"] == "time (UTC+09:00 (JST))"  # the zone is stated ...
            fmt = x["axis"]["format"]
            assert "%H:%M" in fmt and "%I" not in fmt and "%p" not in fmt  # ... and the clock is 24 h
            # one backup: a padded domain (half an hour either side), not an axis of milliseconds
            lo, hi = (datetime.fromisoformat(v) for v in x["scale"]["domain"])
            wall = info.created.astimezone(timezone(timedelta(hours=9))).replace(tzinfo=timezone.utc)
            assert lo <= wall - timedelta(minutes=30) and hi >= wall + timedelta(minutes=30)
            assert "formatType" not in x["axis"]  # (it turns the format into AM/PM labels in the browser)
            marks = [layer["mark"]["type"] for layer in spec["layer"]]
            assert "point" in marks
            if n < 2:
                assert "text" in marks  # every point carries its value (storage: two series, tooltips)
        assert any(f"({info.created.astimezone(timezone(timedelta(hours=9))):%Y-%m-%d %H:%M:%S} UTC+09:00 (JST))"
                   in m.value for m in at.markdown)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_home_charts_join_several_backups_with_a_line(seeded, make_app, root):
    store = LocalStore(root)
    for hours in (30, 5):
        _age_backup(store, make_backup(seeded, root).backup_id, hours=hours)
    make_backup(seeded, root)
    at = run_page(make_app("viewer"))
    assert not at.exception
    size, docs, storage = _chart_specs(at)
    for spec in (size, docs):
        assert [layer["mark"]["type"] for layer in spec["layer"]] == ["line", "point", "text"]
    assert [layer["mark"]["type"] for layer in storage["layer"]] == ["line", "point"]
    for spec in (size, docs, storage):
        assert _x(spec)["axis"]["format"] == "%d %b %H:%M"  # more than a day: the date too


def test_home_and_browse_show_the_same_storage_figure(seeded, make_app, root):
    make_backup(seeded, root)
    make_backup(seeded, root, collections=["Equipment_select_options"])
    at = run_page(make_app("viewer"))
    storage = next(m for m in at.metric if m.label == "Backup storage")
    on_disk = LocalStore(root).usage()
    from webui.common import human_bytes

    assert storage.value == human_bytes(on_disk)
    assert f"{human_bytes(on_disk)} in storage" in storage.help and "2 backups" in storage.help
    at.switch_page("pages/4_Browse_Backups.py")
    at.run()
    assert not at.exception
    caption = next(c.value for c in at.caption if "in storage" in c.value)
    assert f"{human_bytes(on_disk)} in storage" in caption and "2 backups" in caption
    assert storage.help.split(":", 1)[1].strip() in caption  # word for word the same figures


def test_one_backup_of_one_collection_is_singular(seeded, make_app, root):
    make_backup(seeded, root, collections=["Equipment_select_options"])
    at = run_page(make_app("viewer"))
    body = texts(at)
    assert "3 documents in 1 collection," in body and "1 collections" not in body
    assert "1 backup in" in next(m.help for m in at.metric if m.label == "Backup storage")
