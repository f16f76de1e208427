"""Settings from command-line flags, the environment and ``.streamlit/secrets.toml``.

Precedence, highest first: explicit arguments (CLI flags), environment
variables, ``.streamlit/secrets.toml``, defaults. The names are a contract
(DESIGN.md section 4).
"""

from __future__ import annotations

import getpass
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

DEFAULT_DB = "equipment_db"
DEFAULT_ROOT = "./restore_data_to_db"
DEFAULT_DATA_DIR = "./.data"
SECRETS_FILE = Path(".streamlit") / "secrets.toml"


def load_secrets(path: Path | None = None) -> dict[str, Any]:
    """Read ``.streamlit/secrets.toml`` if present; a malformed file is a clear error."""
    path = path or Path(os.environ.get("BACKUP_SECRETS_FILE", SECRETS_FILE))
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read secrets file {path}: {exc}") from None


def mask_uri(uri: str | None) -> str:
    """Return the URI with any password replaced by ``***`` (safe for logs and UI)."""
    if not uri:
        return ""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if "@" not in parts.netloc:
        return uri
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{hosts}" if ":" in userinfo else f"{user}@{hosts}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs to open the database and the backup root."""

    uri: str | None = None
    db_name: str = DEFAULT_DB
    backup_root: Path = Path(DEFAULT_ROOT)
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    user: str = field(default_factory=lambda: _os_user())
    secrets: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def embedded(self) -> bool:
        return not self.uri

    @property
    def uri_display(self) -> str:
        return mask_uri(self.uri) if self.uri else f"embedded ({self.data_dir})"

    def with_user(self, user: str) -> "Settings":
        return replace(self, user=user)

    @classmethod
    def load(
        cls,
        *,
        uri: str | None = None,
        db: str | None = None,
        root: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, Any] | None = None,
    ) -> "Settings":
        env = os.environ if env is None else env
        secrets = load_secrets() if secrets is None else secrets

        def pick(arg, name, default):
            for value in (arg, env.get(name), secrets.get(name)):
                if value not in (None, ""):
                    return value
            return default

        db_name = str(pick(db, "MONGODB_DB", DEFAULT_DB))
        _check_db_name(db_name)
        return cls(
            uri=pick(uri, "MONGODB_URI", None),
            db_name=db_name,
            backup_root=Path(pick(root, "BACKUP_ROOT", DEFAULT_ROOT)),
            data_dir=Path(pick(data_dir, "EMBEDDED_DATA_DIR", DEFAULT_DATA_DIR)),
            secrets=dict(secrets),
        )


def _check_db_name(name: str) -> None:
    bad = set('/\\. "$*<>:|?\0')
    if not name or len(name) > 63 or any(ch in bad for ch in name):
        raise ConfigError(f"invalid database name {name!r}")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid{os.getuid()}"
