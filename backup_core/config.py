"""Settings from command-line flags, the environment and ``.streamlit/secrets.toml``.

Precedence, highest first: explicit arguments (CLI flags), environment
variables, ``.streamlit/secrets.toml``, defaults. The names are a contract
(DESIGN.md section 4).
"""

from __future__ import annotations

import getpass
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

DEFAULT_DB = "equipment_db"
DEFAULT_ROOT = "./restore_data_to_db"
DEFAULT_DATA_DIR = "./.data"
DEFAULT_IMPORT_MB = 100
SECRETS_FILE = Path(".streamlit") / "secrets.toml"


def secrets_path() -> Path:
    """``.streamlit/secrets.toml``, or the file ``BACKUP_SECRETS_FILE`` names."""
    return Path(os.environ.get("BACKUP_SECRETS_FILE", SECRETS_FILE))


def load_secrets(path: Path | None = None) -> dict[str, Any]:
    """Read ``.streamlit/secrets.toml`` if present; a malformed file is a clear error."""
    path = path or secrets_path()
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


def _flag(value: Any, default: bool) -> bool:
    if value in (None, ""):
        return default
    return str(value).strip().lower() not in ("0", "off", "false", "no")


def _import_limit(raw: Any) -> int:
    if raw in (None, ""):
        return DEFAULT_IMPORT_MB * 1024 * 1024
    try:
        mb = float(raw)
    except (TypeError, ValueError):
        mb = -1
    if not 0 < mb < float("inf"):  # also refuses nan
        raise ConfigError(f"invalid BACKUP_IMPORT_MAX_MB {raw!r}: give a positive number of megabytes")
    return int(mb * 1024 * 1024)


def meta_name(db_name: str) -> str:
    """The default metadata database of database ``db_name`` (``BACKUP_META_DB`` overrides it)."""
    return f"{db_name}_backup_meta"


@dataclass(frozen=True)
class Settings:
    """Everything an entry point needs: where the data and the backups are, and how to behave.

    The only place the environment is read (``Settings.load``).
    """

    uri: str | None = None
    db_name: str = DEFAULT_DB
    backup_root: Path | str = Path(DEFAULT_ROOT)  # a folder, or "s3://bucket/prefix"
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    user: str = field(default_factory=lambda: _os_user())
    secrets: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    meta_db_override: str | None = None          # BACKUP_META_DB
    import_max_bytes: int = DEFAULT_IMPORT_MB * 1024 * 1024  # BACKUP_IMPORT_MAX_MB
    scheduler_enabled: bool = True               # BACKUP_SCHEDULER=off disables every scheduler
    dashboard_scheduler: bool = True             # BACKUP_DASHBOARD_SCHEDULER=0: the dashboard hosts none
    demo_admin_password: str | None = field(default=None, repr=False)  # BACKUP_DEMO_ADMIN_PASSWORD
    admin_user: str | None = None                # BACKUP_ADMIN_USER
    admin_password_hash: str | None = field(default=None, repr=False)  # BACKUP_ADMIN_PASSWORD_HASH
    debug: bool = False                          # BACKUP_DEBUG: tracebacks for internal errors
    key_file: str | None = None                  # BACKUP_KEY_FILE: encrypts new backups, reads them
    key_files: tuple[str, ...] = ()              # BACKUP_KEY_FILES: older keys, for reading
    mirror_root: str | None = None               # BACKUP_MIRROR_ROOT: a second copy of every new backup
    notify_urls: tuple[str, ...] = field(default=(), repr=False)  # BACKUP_NOTIFY: apprise URLs (secrets)
    read_preference: str | None = None           # BACKUP_READ_PREFERENCE: where backups read (None: default)
    allow_plaintext: bool = False                # BACKUP_ALLOW_PLAINTEXT / --allow-plaintext: trust unencrypted
                                                 # backups although a key is configured
    drill_uri: str | None = field(default=None, repr=False)  # BACKUP_DRILL_URI: server restore drills write to

    @property
    def embedded(self) -> bool:
        return not self.uri

    @property
    def meta_db(self) -> str:
        """The metadata database (swap-in registry, scheduler lease, ...): never backed up or restored."""
        return self.meta_db_override or meta_name(self.db_name)

    @property
    def root_url(self) -> str:
        """The backup root as text: a path, or ``s3://bucket/prefix``."""
        return str(self.backup_root)

    @property
    def remote(self) -> bool:
        return is_remote_root(self.backup_root)

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
        key_file: str | os.PathLike | None = None,
        allow_plaintext: bool | None = None,
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
        check_db_name(db_name)
        meta = pick(None, "BACKUP_META_DB", None)
        if meta is not None:
            check_db_name(str(meta))
            if str(meta) == db_name:
                raise ConfigError("BACKUP_META_DB must not be the backed-up database itself")
        return cls(
            uri=pick(uri, "MONGODB_URI", None),
            db_name=db_name,
            backup_root=root_value(pick(root, "BACKUP_ROOT", DEFAULT_ROOT)),
            data_dir=Path(pick(data_dir, "EMBEDDED_DATA_DIR", DEFAULT_DATA_DIR)),
            secrets=dict(secrets),
            meta_db_override=str(meta) if meta is not None else None,
            import_max_bytes=_import_limit(pick(None, "BACKUP_IMPORT_MAX_MB", None)),
            scheduler_enabled=_flag(env.get("BACKUP_SCHEDULER"), True),
            dashboard_scheduler=_flag(env.get("BACKUP_DASHBOARD_SCHEDULER"), True),
            demo_admin_password=env.get("BACKUP_DEMO_ADMIN_PASSWORD") or None,
            admin_user=pick(None, "BACKUP_ADMIN_USER", None),
            admin_password_hash=pick(None, "BACKUP_ADMIN_PASSWORD_HASH", None),
            debug=_flag(env.get("BACKUP_DEBUG"), False),
            key_file=str(pick(key_file, "BACKUP_KEY_FILE", "")) or None,
            key_files=_path_list(pick(None, "BACKUP_KEY_FILES", "")),
            mirror_root=_mirror(pick(None, "BACKUP_MIRROR_ROOT", None)),
            notify_urls=notify_urls(pick(None, "BACKUP_NOTIFY", "")),
            read_preference=_read_preference(pick(None, "BACKUP_READ_PREFERENCE", None)),
            allow_plaintext=bool(allow_plaintext) or _flag(env.get("BACKUP_ALLOW_PLAINTEXT"), False),
            drill_uri=pick(None, "BACKUP_DRILL_URI", None),
        )


def aws_environment() -> tuple:
    """The AWS settings boto3 reads from the environment itself (endpoint, credentials, profile, region).

    The product never interprets them; the S3 client is made again when they change.
    """
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def is_remote_root(root: object) -> bool:
    return str(root).startswith("s3://")


def root_value(root: object) -> Path | str:
    """A backup root as given: ``s3://bucket/prefix`` stays text, anything else is a local path."""
    text = str(root)
    if is_remote_root(text):
        rest = text[5:]
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise ConfigError(f"invalid backup root {text!r}: expected s3://bucket/prefix")
        return "s3://" + rest.strip("/")
    if "://" in text:
        raise ConfigError(f"unsupported backup root {text!r}: use a folder or s3://bucket/prefix")
    return Path(text)


def _path_list(value: object) -> tuple[str, ...]:
    """``BACKUP_KEY_FILES``: paths separated by the OS path separator, commas or spaces, or a TOML list."""
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value if str(v).strip())
    parts = str(value or "").replace(os.pathsep, ",").replace(" ", ",").split(",")
    return tuple(p for p in (x.strip() for x in parts) if p)


# readPreference modes (MongoDB's names); BACKUP_READ_PREFERENCE accepts them in any letter case
READ_PREFERENCES = ("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest")


def _read_preference(value: object) -> str | None:
    if value in (None, ""):
        return None
    modes = {m.lower(): m for m in READ_PREFERENCES}
    mode = modes.get(str(value).strip().lower().replace("_", ""))
    if mode is None:
        raise ConfigError(f"invalid BACKUP_READ_PREFERENCE {value!r}: use one of {', '.join(READ_PREFERENCES)}")
    return mode


def notify_urls(value: object) -> tuple[str, ...]:
    """``BACKUP_NOTIFY``: apprise URLs separated by spaces or commas (or a TOML list).

    A comma splits only where the next URL starts (``scheme://``), so commas inside
    one URL (``mailto://...?to=a@x,b@y``) stay part of it.
    """
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[str] = []
    for item in items:
        for part in re.split(r"\s+|,(?=\s*[A-Za-z][A-Za-z0-9+.-]*://)", str(item or "")):
            part = part.strip().strip(",")
            if part:
                out.append(part)
    return tuple(out)


def _mirror(value: object) -> str | None:
    return str(root_value(value)) if value not in (None, "") else None


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``BACKUP_CACHE_DIR``: where spools of object-store backups live (default ``~/.cache/backup_core``)."""
    raw = (os.environ if env is None else env).get("BACKUP_CACHE_DIR", "").strip()
    return Path(raw) if raw else Path.home() / ".cache" / "backup_core"


DEFAULT_LOCK_TTL_S = 300.0


def lock_ttl_seconds(env: Mapping[str, str] | None = None) -> float:
    """``BACKUP_LOCK_TTL_SECONDS``: how long a repository lock lives without renewal (default 300 s).

    A lock not renewed within it counts as stale; a holder that was frozen longer loses it.
    """
    raw = (os.environ if env is None else env).get("BACKUP_LOCK_TTL_SECONDS", "").strip()
    if not raw:
        return DEFAULT_LOCK_TTL_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"BACKUP_LOCK_TTL_SECONDS must be a number of seconds, got {raw!r}") from None
    if not (1.0 <= value <= 86400.0):
        raise ConfigError(f"BACKUP_LOCK_TTL_SECONDS must be between 1 and 86400 seconds, got {raw!r}")
    return value


def debug_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``BACKUP_DEBUG``: show tracebacks of internal errors (read before any other setting can fail)."""
    return _flag((os.environ if env is None else env).get("BACKUP_DEBUG"), False)


def check_db_name(name: str) -> None:
    bad = set('/\\. "$*<>:|?\0')
    if not name or len(name) > 63 or any(ch in bad for ch in name):
        raise ConfigError(f"invalid database name {name!r}")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return f"uid{os.getuid()}"
