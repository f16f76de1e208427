"""The CLI contract for ``export ID --out FILE.zip`` and ``import FILE.zip [--max-mb N]``."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from backup_core.backup import BackupOptions, create_backup
from tests.cli import one_json as _json


@pytest.fixture
def backup_id(db, store):
    db.Equipment.insert_many([{"_id": i, "asset_id": f"EQ-{i:03d}", "price": i * 1.5} for i in range(10)])
    db.Equipment_select_options.insert_many([{"_id": i, "value": f"v{i}"} for i in range(3)])
    return create_backup(db, store, BackupOptions(user="t")).backup_id


def _refused(proc, text):
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0], proc.stderr
    return err[0]


def test_export_then_import_into_another_root(cli, backup_id, store, tmp_path):
    out = tmp_path / "b.zip"
    exp = _json(cli("export", backup_id, "--out", str(out), "--json"))
    assert exp["backup_id"] == backup_id and exp["path"] == str(out) and out.is_file()
    other = tmp_path / "other"
    imp = _json(cli("--root", str(other), "import", str(out), "--json"))
    assert imp["backup_id"] == backup_id and imp["path"].startswith(str(other))
    assert imp["already_present"] is False and imp["collections"]["Equipment"]["count"] == 10
    v = _json(cli("--root", str(other), "verify", backup_id, "--json"))
    assert v["ok"] is True
    listed = _json(cli("--root", str(other), "list", "--json"))["backups"]
    assert [b["backup_id"] for b in listed] == [backup_id]
    again = _json(cli("--root", str(other), "import", str(out), "--json"))
    assert again["already_present"] is True
    # text output too
    proc = cli("--root", str(other), "import", str(out))
    assert proc.returncode == 0 and "already present" in proc.stdout


def test_export_refuses_to_overwrite_without_force(cli, backup_id, tmp_path):
    out = tmp_path / "b.zip"
    out.write_bytes(b"keep me")
    _refused(cli("export", backup_id, "--out", str(out)), "--force")
    assert out.read_bytes() == b"keep me"
    _json(cli("export", backup_id, "--out", str(out), "--force", "--json"))
    assert zipfile.is_zipfile(out)


def test_export_unknown_backup(cli, tmp_path):
    proc = cli("export", "20200101T000000Z", "--out", str(tmp_path / "x.zip"), "--json")
    assert proc.returncode == 4 and json.loads(proc.stdout)["ok"] is False
    _refused(cli("export", "not-an-id", "--out", str(tmp_path / "x.zip")), "invalid backup id")


def _evil(zip_path, tmp_path, extra_name: str) -> str:
    with zipfile.ZipFile(zip_path) as zf:
        entries = [(i.filename, zf.read(i)) for i in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries + [(extra_name, b"boom")]:
            zf.writestr(name, data)
    path = tmp_path / f"evil{len(list(tmp_path.glob('evil*.zip')))}.zip"
    path.write_bytes(buf.getvalue())
    return str(path)


def test_import_refuses_unsafe_archives_with_one_line(cli, backup_id, tmp_path):
    out = tmp_path / "b.zip"
    _json(cli("export", backup_id, "--out", str(out), "--json"))
    other = str(tmp_path / "other")
    cases = [
        (_evil(out, tmp_path, f"{backup_id}/../../evil.sh"), "leaves its folder"),
        (_evil(out, tmp_path, "/etc/cron.d/evil"), "absolute path"),
        (_evil(out, tmp_path, f"{backup_id}/extra.csv"), "manifest does not list"),
    ]
    notzip = tmp_path / "notzip.zip"
    notzip.write_text("hello")
    cases.append((str(notzip), "not a zip archive"))
    for path, reason in cases:
        proc = cli("--root", other, "import", path, "--json")
        _refused(proc, reason)
        assert proc.returncode == 5 and json.loads(proc.stdout)["ok"] is False
    _refused(cli("--root", other, "import", str(out), "--max-mb", "0.001"), "larger than the import limit")
    _refused(cli("--root", other, "import", str(out), "--max-mb", "0"), "--max-mb must be a positive")
    _refused(cli("--root", other, "import", str(tmp_path / "missing.zip")), "no such file")
    assert _json(cli("--root", other, "list", "--json"))["backups"] == []
    log = [json.loads(line) for line in (tmp_path / "other" / ".audit" / "audit.jsonl").read_text().splitlines()]
    # every refused import is on the record: "started", then its outcome, linked by op
    assert len(log) == 2 * (len(cases) + 2) and all(e["action"] == "import" for e in log)
    for started, outcome in zip(log[::2], log[1::2]):
        assert (started["outcome"], outcome["outcome"]) == ("started", "refused") and started["op"] == outcome["op"]
