"""The package as another project installs it: ``pip install .`` (and ``.[ui]``), and ``make setup``'s editable install.

One wheel is built per run of this module, from a copy of exactly what the
distribution is made of (so the build writes nothing into the checkout), and
inspected: its declared dependencies, its contents, and whether the core
imports with Streamlit absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT

SOURCES = ("pyproject.toml", "setup.py", "README.md", "backup_core", "webui")
UI_ONLY = {"streamlit", "pandas"}  # the dashboard's libraries: the "ui" extra, never the core
# lines of this machine's pip configuration (an extra index that lists missing folders), not of the build
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _source_copy(dest: Path) -> Path:
    dest.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(
                "__pycache__", "*.so", "*.pyd", "*.build.json", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _pip(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout)


def _own_output(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip() and not _PIP_NOISE.match(line)]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("wheel")
    proc = _pip("wheel", "--no-deps", "--quiet", "-w", str(base / "dist"), str(_source_copy(base / "src")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = (base / "dist").glob("*.whl")
    return path


def _metadata(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def _pinned_runtime() -> dict[str, str]:
    """requirements.txt's runtime section (before "# Tests"): name -> pinned version."""
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("# Tests"):
            break
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            (spec,) = req.specifier
            pins[_norm(req.name)] = spec.version
    return pins


def test_wheel_declares_every_runtime_dependency_and_streamlit_only_as_the_ui_extra(wheel):
    meta = _metadata(wheel)
    declared: dict[str, Requirement] = {}
    for text in meta.get_all("Requires-Dist") or []:
        req = Requirement(text)
        declared[_norm(req.name)] = req
    pins = _pinned_runtime()
    assert pins, "requirements.txt has no runtime section"
    for name, version in pins.items():
        assert name in declared, f"{name} is pinned in requirements.txt but not declared in pyproject.toml"
        req = declared[name]
        assert req.specifier.contains(version), f"{name}=={version} (requirements.txt) is outside {req}"
        in_ui = req.marker is not None and req.marker.evaluate({"extra": "ui"}) \
            and not req.marker.evaluate({"extra": ""})
        if name in UI_ONLY:
            assert in_ui, f"{name} must be needed only by the ui extra, not by the core: {req}"
        else:
            assert req.marker is None, f"the core needs {name}: {req}"
    assert "ui" in (meta.get_all("Provides-Extra") or [])
    assert meta["Requires-Python"] == ">=3.13"


def test_wheel_holds_the_packages_and_the_command_only(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"backup_core", "webui"}
    for needed in ("backup_core/__init__.py", "backup_core/api.py", "backup_core/archive.py",
                   "backup_core/cli/archive_cmd.py", "backup_core/store/layout.py", "webui/__init__.py"):
        assert needed in names
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "bench/", "pages/"))]
    assert "backup-core = backup_core.cli:entry_point" in entry_points
    import backup_core

    assert _metadata(wheel)["Version"] == backup_core.__version__


def _site_without(target: Path, hidden: set[str]) -> Path:
    """A folder of links to this environment's installed packages, minus ``hidden`` (as if not installed)."""
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        base = _norm(re.split(r"[-.]", entry.name, maxsplit=1)[0])
        if base in hidden or entry.suffix == ".pth" or entry.name.startswith(("__editable__", "mongo_backup")):
            continue
        (target / entry.name).symlink_to(entry)
    return target


IMPORT_CHECK = r"""
import importlib, pkgutil, sys
import backup_core
assert backup_core.__file__.startswith(sys.argv[1]), backup_core.__file__
for mod in pkgutil.walk_packages(backup_core.__path__, "backup_core."):
    importlib.import_module(mod.name)
from backup_core import BackupSystem
assert not [m for m in sys.modules if m.split(".")[0] in ("streamlit", "pandas", "altair")]
try:
    import webui
except ModuleNotFoundError as exc:
    print("webui:", exc)
else:
    raise SystemExit("webui imported without Streamlit")
print("ok")
"""


def test_the_core_imports_where_streamlit_is_not_installed(wheel, tmp_path):
    """``pip install .`` without the ui extra: every backup_core module imports; webui says what is missing."""
    target = tmp_path / "installed"
    proc = _pip("install", "--no-deps", "--quiet", "--target", str(target), str(wheel))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "site").mkdir()
    libs = _site_without(tmp_path / "site", {"streamlit", "pandas", "altair"})
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(libs)])
    # -S: no site-packages (so neither Streamlit nor this checkout's editable install), -P: not the cwd either
    proc = subprocess.run([sys.executable, "-S", "-P", "-c", IMPORT_CHECK, str(target)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pip install 'mongo-backup-dashboard[ui]'" in proc.stdout
    assert proc.stdout.strip().endswith("ok")


def test_editable_install_prints_no_warning(tmp_path):
    """``make setup`` runs ``pip install -e .``: no setuptools warning of our making (issue 21 item 11)."""
    src = _source_copy(tmp_path / "src")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    proc = _pip("--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-deps", "-e", str(src))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _own_output(proc) == []
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import backup_core; print(backup_core.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == str(src / "backup_core" / "__init__.py")
