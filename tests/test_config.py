"""Settings: flags beat environment beat secrets.toml beat defaults; the environment is read only here."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_core.config import Settings, debug_enabled, mask_uri
from backup_core.errors import ConfigError


def test_precedence():
    env = {"MONGODB_DB": "from_env", "BACKUP_ROOT": "/env/root"}
    secrets = {"MONGODB_DB": "from_secrets", "MONGODB_URI": "mongodb://s/"}
    s = Settings.load(db="from_flag", env=env, secrets=secrets)
    assert s.db_name == "from_flag" and s.backup_root == Path("/env/root") and s.uri == "mongodb://s/"
    assert Settings.load(env={}, secrets={}).db_name == "equipment_db"


def test_meta_db_defaults_and_override():
    assert Settings.load(db="app", env={}, secrets={}).meta_db == "app_backup_meta"
    assert Settings.load(db="app", env={"BACKUP_META_DB": "ops"}, secrets={}).meta_db == "ops"
    with pytest.raises(ConfigError, match="must not be the backed-up database"):
        Settings.load(db="app", env={"BACKUP_META_DB": "app"}, secrets={})


@pytest.mark.parametrize("name", ["a/b", "a.b", "x" * 64, "sp ace", "dol$lar"])
def test_invalid_database_names(name):
    with pytest.raises(ConfigError):
        Settings.load(db=name, env={}, secrets={})


def test_flags_and_limits_from_the_environment():
    s = Settings.load(env={"BACKUP_SCHEDULER": "off", "BACKUP_DASHBOARD_SCHEDULER": "0",
                           "BACKUP_IMPORT_MAX_MB": "2.5"}, secrets={})
    assert not s.scheduler_enabled and not s.dashboard_scheduler
    assert s.import_max_bytes == int(2.5 * 1024 * 1024)
    for bad in ("0", "-1", "lots", "nan"):
        with pytest.raises(ConfigError, match="BACKUP_IMPORT_MAX_MB"):
            Settings.load(env={"BACKUP_IMPORT_MAX_MB": bad}, secrets={})
    assert debug_enabled({"BACKUP_DEBUG": "1"}) and not debug_enabled({})


def test_passwords_never_show():
    assert mask_uri("mongodb://u:s3cret@h:27017/db") == "mongodb://u:***@h:27017/db"
    assert "s3cret" not in Settings(uri="mongodb://u:s3cret@h/").uri_display


def test_no_other_module_reads_the_environment():
    """Settings is the one place the environment is read (plus the secrets file path it names)."""
    import re

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in list((root / "backup_core").rglob("*.py")) + list((root / "webui").rglob("*.py")) \
            + list((root / "pages").glob("*.py")) + [root / "app.py"]:
        if path.name == "config.py" and path.parent.name == "backup_core":
            continue
        text = path.read_text()
        for m in re.finditer(r"os\.environ(?!\.items\(\))|os\.getenv", text):
            line = text[:m.start()].count("\n") + 1
            offenders.append(f"{path.relative_to(root)}:{line}")
    # the embedded server hands its own environment to the process it starts, and the test seam reads its
    # pause variable (a fault-test switch, see testseam.py); neither is reading settings
    offenders = [o for o in offenders if not o.startswith(("backup_core/embedded.py", "backup_core/testseam.py"))]
    assert offenders == []
