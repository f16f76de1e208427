"""The object-store backend: backups in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...).

``BACKUP_ROOT=s3://bucket/prefix``. The layout under the prefix is the local
one: ``<weekday>/<backup_id>/<file>`` and the manifest. There is no rename,
so "manifest last" is the visibility rule: data files are uploaded under the
backup's final prefix, then the manifest is written with ``If-None-Match: *``
(never over an existing backup); a prefix without a valid manifest is not a
backup, and the next operation that holds the lock removes it. Deleting
removes the manifest first, so a backup disappears at once.

Client: boto3 (see the README for why). Endpoint and credentials come the
standard AWS way (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, instance roles), read by boto3
itself. Retries with backoff on throttling and transient errors are botocore's
"standard" mode; large files go up as multipart uploads (``upload_file``), and
reads resume with a ``Range`` request after a dropped connection.

The lock needs no shared filesystem: a lock object ``<prefix>/.lock`` created
with ``If-None-Match: *`` and renewed with ``If-Match`` while held; a holder
that stops renewing for ``LOCK_TTL_S`` (judged by the server's clock) is taken
over. The audit log is a ``BlobAuditLog`` under ``<prefix>/.audit/``.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import tempfile
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, Iterator

from ..audit import BlobAuditLog, PreconditionFailed
from ..config import aws_environment
from ..errors import BackupError, IncompleteBackup, KeyMissing, LockBusy, StorageError
from ..locks import owner_record, process_alive
from ..timeutil import now_iso
from .base import Staging, Store
from .crypto import Keyring
from .layout import ID_RE, MANIFEST, MANIFEST_ENC, WEEKDAYS
from .manifest import MAX_MANIFEST_BYTES

LOCK_TTL_S = 60.0
READ_RETRIES = 5
RETRY_ATTEMPTS = 6  # botocore "standard" retries: throttling and transient errors, with backoff
_CLIENTS: dict[tuple, object] = {}
_CLIENTS_GUARD = threading.Lock()


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    if not url.startswith("s3://"):
        raise StorageError(f"not an S3 URL: {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise StorageError(f"invalid S3 URL {url!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def client():
    """One boto3 S3 client per process and AWS environment (clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    key = (aws_environment(), RETRY_ATTEMPTS)
    with _CLIENTS_GUARD:
        c = _CLIENTS.get(key)
        if c is None:
            config = Config(retries={"mode": "standard", "max_attempts": RETRY_ATTEMPTS}, connect_timeout=5,
                            read_timeout=60,
                            s3={"addressing_style": "auto"}, max_pool_connections=20)
            c = boto3.session.Session().client("s3", config=config)
            _CLIENTS[key] = c
        return c


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def s3_errors(what: str, where: str) -> Iterator[None]:
    """Turn boto errors into one-line StorageErrors that say what to check."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code == "PreconditionFailed":
            raise PreconditionFailed(what) from None
        if code in ("NoSuchBucket",):
            raise StorageError(f"{what} failed: the bucket of {where} does not exist",
                               hint="create it, or fix BACKUP_ROOT") from None
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AllAccessDisabled", "403"):
            raise StorageError(f"{what} failed: access to {where} was denied ({code})",
                               hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the profile, or the "
                                    "instance role) and the bucket policy") from None
        if code in ("SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "503"):
            raise StorageError(f"{what} failed: {where} kept asking to slow down after several retries",
                               hint="try again later") from None
        message = exc.response.get("Error", {}).get("Message", "") or code
        raise StorageError(f"{what} failed on {where}: {message}") from None
    except NoCredentialsError:
        raise StorageError(f"{what} failed: no AWS credentials for {where}",
                           hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance "
                                "role") from None
    except BotoCoreError as exc:
        text = " ".join(str(exc).split())
        raise StorageError(f"{what} failed: cannot reach the object store for {where}: {text}",
                           hint="check AWS_ENDPOINT_URL and the network") from None


class _Blobs:
    """Small objects with conditional writes, for the audit log."""

    def __init__(self, store: "S3Store") -> None:
        self.s = store

    def list(self, prefix: str) -> list[str]:
        return [k[len(self.s.prefix_slash):] for k, _size, _mod in self.s._list(self.s.key(prefix))]

    def get(self, name: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        try:
            with s3_errors(f"reading {name}", self.s.url):
                r = self.s.c.get_object(Bucket=self.s.bucket, Key=self.s.key(name))
                return r["Body"].read(), r["ETag"]
        except StorageError:
            raise
        except ClientError:  # pragma: no cover - translated above
            return None

    def put(self, name: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        kw = {"IfMatch": if_match} if if_match else ({"IfNoneMatch": "*"} if if_none_match else {})
        with s3_errors(f"writing {name}", self.s.url):
            return self.s.c.put_object(Bucket=self.s.bucket, Key=self.s.key(name), Body=data, **kw)["ETag"]


class S3Lock:
    """The exclusive lock of an S3 root: a lock object taken with a conditional write, kept by renewal."""

    def __init__(self, store: "S3Store", name: str = ".lock", ttl: float = LOCK_TTL_S) -> None:
        self.s, self.key, self.ttl = store, store.key(name), ttl
        self._local = threading.RLock()  # threads of this process queue here first
        self._depth = 0
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _body(self, operation: str) -> bytes:
        return json.dumps({**owner_record(), "operation": operation, "since": now_iso(), "ttl": self.ttl}).encode()

    def holder(self) -> tuple[dict, str, float] | None:
        """(record, etag, age in seconds by the server's clock) of the current lock object, or None."""
        c = self.s.c
        try:
            with s3_errors("reading the lock", self.s.url):
                r = c.get_object(Bucket=self.s.bucket, Key=self.key)
        except StorageError as exc:
            if "NoSuchKey" in str(exc) or "does not exist" in str(exc) and "bucket" not in str(exc):
                return None
            raise
        try:
            record = json.loads(r["Body"].read())
        except ValueError:
            record = {}
        server_now = parsedate_to_datetime(r["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (server_now - r["LastModified"]).total_seconds()
        return record, r["ETag"], age

    def _try_take(self, operation: str) -> bool:
        try:
            with s3_errors("taking the lock", self.s.url):
                self._etag = self.s.c.put_object(Bucket=self.s.bucket, Key=self.key, Body=self._body(operation),
                                                 IfNoneMatch="*")["ETag"]
            return True
        except PreconditionFailed:
            return False

    @contextlib.contextmanager
    def hold(self, operation: str, timeout: float) -> Iterator[None]:
        if not self._local.acquire(timeout=max(timeout, 0.01)):
            held = self._missing_ok(self.holder)
            raise self._busy(operation, timeout, held[0] if held else None)
        try:
            if self._depth == 0:
                self._acquire(operation, timeout)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()
        finally:
            self._local.release()

    def _acquire(self, operation: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._try_take(operation):
                break
            held = self._missing_ok(self.holder)
            if held is not None:
                record, etag, age = held
                if age > float(record.get("ttl") or self.ttl) * 1.5 or self._orphaned(record):
                    # its holder stopped renewing: take it over (only if nobody else did first)
                    with contextlib.suppress(PreconditionFailed, StorageError):
                        with s3_errors("taking over a stale lock", self.s.url):
                            self.s.c.delete_object(Bucket=self.s.bucket, Key=self.key, IfMatch=etag)
                    continue
            if time.monotonic() >= deadline:
                raise self._busy(operation, timeout, held[0] if held else None)
            time.sleep(random.uniform(0.2, 0.5))
        self.lost = False
        self._stop.clear()
        self._thread = threading.Thread(target=self._renew, args=(operation,), daemon=True,
                                        name=f"s3-lock-{self.s.bucket}")
        self._thread.start()

    @staticmethod
    def _orphaned(record: dict) -> bool:
        """A lock this host's process left: this process (which does not hold it now) or a dead one."""
        me = owner_record()
        if record.get("host") != me["host"]:
            return False
        if record.get("pid") == me["pid"]:
            return True  # ours, from a run that could not release it (the endpoint was gone)
        return not process_alive(record.get("pid"), record.get("pid_started"), record.get("host"))

    @staticmethod
    def _missing_ok(fn):
        try:
            return fn()
        except StorageError:
            return None

    def _renew(self, operation: str) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with s3_errors("renewing the lock", self.s.url):
                    self._etag = self.s.c.put_object(Bucket=self.s.bucket, Key=self.key,
                                                     Body=self._body(operation), IfMatch=self._etag)["ETag"]
            except PreconditionFailed:
                self.lost = True  # taken over: this holder must not commit anything any more
                return
            except StorageError:
                continue  # a transient failure: the next renewal may work, the TTL has room for two misses

    def _release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if not self.lost and self._etag:
            with contextlib.suppress(PreconditionFailed, StorageError):
                with s3_errors("releasing the lock", self.s.url):
                    self.s.c.delete_object(Bucket=self.s.bucket, Key=self.key, IfMatch=self._etag)
        self._etag = None

    def _busy(self, operation: str, timeout: float, record: dict | None) -> LockBusy:
        record = record or {}
        who = (f"{record.get('operation', 'another operation')} (pid {record.get('pid', '?')} on "
               f"{record.get('host', '?')}, since {record.get('since', '?')})")
        return LockBusy(f"cannot {operation}: the backup root {self.s.url} is locked by {who}; "
                        f"gave up after {timeout:g}s", hint="wait for it to finish and try again")


class _ObjectReader(io.RawIOBase):
    """A stored object read as a stream; a dropped connection resumes where it stopped (Range)."""

    def __init__(self, store: "S3Store", key: str, size: int) -> None:
        self.s, self.key, self.size = store, key, size
        self.pos = 0
        self._body = None

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        kw = {"Range": f"bytes={self.pos}-"} if self.pos else {}
        with s3_errors(f"reading {self.key}", self.s.url):
            self._body = self.s.c.get_object(Bucket=self.s.bucket, Key=self.key, **kw)["Body"]

    def readinto(self, b) -> int:  # type: ignore[override]
        if self.pos >= self.size:
            return 0
        for attempt in range(READ_RETRIES):
            try:
                if self._body is None:
                    self._open()
                data = self._body.read(len(b))  # type: ignore[union-attr]
                if not data and self.pos < self.size:
                    raise OSError("connection closed early")
                b[:len(data)] = data
                self.pos += len(data)
                return len(data)
            except (OSError, Exception) as exc:  # noqa: BLE001 - urllib3/botocore read errors vary
                if isinstance(exc, StorageError) or attempt == READ_RETRIES - 1:
                    raise StorageError(f"reading {self.key} from {self.s.url} failed: {exc}") from None
                self._body = None
                time.sleep(0.2 * (attempt + 1))
        return 0

    def close(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()


class _S3Staging(Staging):
    """Files are spooled locally, then uploaded at commit under the backup's final prefix, manifest last.

    Uploading at commit lets a deduplicated file (``reuse``) never go up at all.
    """

    def __init__(self, store: "S3Store", backup_id: str, day: str) -> None:
        self.s, self.prefix = store, f"{day}/{backup_id}/"
        self.tmp = Path(tempfile.mkdtemp(prefix="backup-s3-"))
        self.pending: list[str] = []
        self.uploaded: list[str] = []
        self._guard = threading.Lock()  # parallel jobs each spool their own files

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with (self.tmp / name).open("wb") as fh:
            yield fh
        with self._guard:
            self.pending.append(name)

    def scratch(self, name: str) -> Path:
        return self.tmp / f".{name}"

    def reuse(self, name: str, ref: object) -> tuple[bool, str | None]:
        with self._guard:
            if name not in self.pending:
                return False, None
            self.pending.remove(name)
        (self.tmp / name).unlink(missing_ok=True)
        return True, str(ref)

    def _upload(self, name: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig

        key = self.s.key(self.prefix + name)
        config = TransferConfig(multipart_threshold=8 << 20, multipart_chunksize=8 << 20, max_concurrency=4)
        try:
            with s3_errors(f"uploading {name}", self.s.url):
                self.s.c.upload_file(str(self.tmp / name), self.s.bucket, key, Config=config)
        except S3UploadFailedError as exc:
            raise StorageError(f"uploading {name} to {self.s.url} failed: {' '.join(str(exc).split())}",
                               hint="check the endpoint, the bucket and the credentials") from None
        self.uploaded.append(key)
        (self.tmp / name).unlink(missing_ok=True)

    def commit(self, name: str, data: bytes) -> None:
        for pending in list(self.pending):
            self._upload(pending)
            self.pending.remove(pending)
        self.s.check_lock()  # uploads can take long: still ours?
        try:
            with s3_errors("writing the manifest", self.s.url):
                self.s.c.put_object(Bucket=self.s.bucket, Key=self.s.key(self.prefix + name), Body=data,
                                    IfNoneMatch="*")
        except PreconditionFailed:
            raise StorageError(f"backup {self.prefix.rstrip('/')} already exists in {self.s.url}") from None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(Exception):
            self.s._delete_keys(self.uploaded)


class S3StateFiles:
    """Small shared documents under ``<prefix>/.<area>/``; written under a lock object of their own."""

    def __init__(self, store: "S3Store", area: str) -> None:
        self.s, self.area = store, area
        self._lock = S3Lock(store, f".{area}/.lock", ttl=30.0)

    def where(self, name: str = "") -> str:
        return f"{self.s.url}/.{self.area}/{name}"

    def lock(self, timeout: float | None = None):
        return self._lock.hold(f"changing {self.area}", 30.0 if timeout is None else timeout)

    def read(self, name: str) -> bytes | None:
        return self.s._get(self.s.key(f".{self.area}/{name}"))

    def write(self, name: str, data: bytes) -> None:
        with s3_errors(f"writing {name}", self.s.url):
            self.s.c.put_object(Bucket=self.s.bucket, Key=self.s.key(f".{self.area}/{name}"), Body=data)

    def remove(self, name: str) -> bool:
        existed = self.read(name) is not None
        with s3_errors(f"deleting {name}", self.s.url):
            self.s.c.delete_object(Bucket=self.s.bucket, Key=self.s.key(f".{self.area}/{name}"))
        return existed

    def exists(self) -> bool:
        return any(True for _ in self.s._list(self.s.key(f".{self.area}/")))

    def signature(self, name: str) -> tuple:
        from botocore.exceptions import ClientError

        try:
            head = self.s.c.head_object(Bucket=self.s.bucket, Key=self.s.key(f".{self.area}/{name}"))
        except ClientError:
            return (name, None)
        return (name, head.get("ETag"), head.get("ContentLength"))


class S3Store(Store):
    """Backups under ``s3://bucket/prefix``."""

    def __init__(self, url: str, keyring: Keyring | None = None) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.prefix_slash = f"{self.prefix}/" if self.prefix else ""
        if keyring is not None:
            self.keyring = keyring
        self.c = client()
        self._lock = S3Lock(self)
        self._listed: dict[tuple[str, str], tuple[str, str]] = {}
        self._manifest_cache: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"S3Store({self.url!r})"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, name: str) -> str:
        return self.prefix_slash + name

    def location(self, day: str, backup_id: str) -> str:
        return f"{self.url}/{day}/{backup_id}"

    # ---- listing helpers
    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[tuple[str, int, object]]:
        """(key, size, last modified) of every object under ``prefix`` (or common prefixes, size -1)."""
        kw = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kw["Delimiter"] = delimiter
        with s3_errors("listing backups", self.url):
            for page in self.c.get_paginator("list_objects_v2").paginate(**kw):
                for cp in page.get("CommonPrefixes", []):
                    yield cp["Prefix"], -1, None
                for obj in page.get("Contents", []):
                    yield obj["Key"], obj["Size"], obj["LastModified"]

    def _manifests(self) -> dict[tuple[str, str], tuple[str, str]]:
        """(day, backup id) -> (manifest key, ETag) of every stored manifest, from one listing."""
        found: dict[tuple[str, str], tuple[str, str]] = {}
        with s3_errors("listing backups", self.url):
            for day in WEEKDAYS:
                prefix = self.key(f"{day}/")
                for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                    for obj in page.get("Contents", []):
                        rest = obj["Key"][len(prefix):].split("/")
                        if len(rest) == 2 and rest[1] in (MANIFEST, MANIFEST_ENC) and ID_RE.match(rest[0]):
                            found[(day, rest[0])] = (obj["Key"], obj["ETag"])
        return found

    def _candidates(self) -> Iterator[tuple[str, str, str | None]]:
        # every prefix named like a backup: those without a manifest are reported as incomplete
        self._listed = self._manifests()
        for day in WEEKDAYS:
            for key, size, _ in self._list(self.key(f"{day}/"), delimiter="/"):
                if size == -1:
                    name = key.rstrip("/").rsplit("/", 1)[-1]
                    if ID_RE.match(name):
                        yield day, name, None

    def change_token(self) -> object:
        """The manifests' keys and versions: changes when a backup is added, removed or rewritten."""
        return tuple(sorted(self._manifests().items()))

    def _find(self, backup_id: str) -> tuple[str, str | None] | None:
        for day in WEEKDAYS:
            with s3_errors("looking for a backup", self.url):
                r = self.c.list_objects_v2(Bucket=self.bucket, Prefix=self.key(f"{day}/{backup_id}/"), MaxKeys=1)
            if r.get("KeyCount", 0):
                return day, None
        return None

    def _get(self, key: str, limit: int | None = None) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            r = self.c.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            with s3_errors(f"reading {key}", self.url):
                raise
            return None  # pragma: no cover
        except Exception:
            with s3_errors(f"reading {key}", self.url):
                raise
            return None  # pragma: no cover
        return r["Body"].read() if limit is None else r["Body"].read(limit)

    def _read_manifest(self, day: str, backup_id: str) -> bytes:
        listed = getattr(self, "_listed", {}).get((day, backup_id))
        if listed is not None and listed in self._manifest_cache:
            return self._manifest_cache[listed]  # unchanged since it was read (same key, same ETag)
        for name in (MANIFEST, MANIFEST_ENC):
            key = self.key(f"{day}/{backup_id}/{name}")
            data = self._get(key, MAX_MANIFEST_BYTES + 1)
            if data is not None:
                if listed is not None and listed[0] == key:
                    self._manifest_cache[listed] = data
                return data
        raise IncompleteBackup(f"{self.location(day, backup_id)} has no manifest (an incomplete backup)")

    def _entries(self, day: str, backup_id: str) -> dict[str, tuple[str, int]]:
        prefix = self.key(f"{day}/{backup_id}/")
        return {k[len(prefix):]: ("file" if "/" not in k[len(prefix):] else "other", size)
                for k, size, _ in self._list(prefix)}

    def _open(self, day: str, backup_id: str, name: str) -> BinaryIO:
        key = self.key(f"{day}/{backup_id}/{name}")
        from botocore.exceptions import ClientError

        try:
            head = self.c.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from None
            with s3_errors(f"reading {name}", self.url):
                raise
        except Exception:
            with s3_errors(f"reading {name}", self.url):
                raise
        return io.BufferedReader(_ObjectReader(self, key, head["ContentLength"]), 1 << 20)

    def _stage(self, backup_id: str, day: str) -> Staging:
        return _S3Staging(self, backup_id, day)

    def _stored_ref(self, info, entry) -> str:
        # always the object itself, never a reference to a reference
        return entry.object or f"{info.day}/{info.backup_id}/{entry.file}"

    def _open_object(self, ref: str) -> BinaryIO:
        from botocore.exceptions import ClientError

        key = self.key(ref)
        try:
            head = self.c.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(key) from None
            with s3_errors(f"reading {ref}", self.url):
                raise
        return io.BufferedReader(_ObjectReader(self, key, head["ContentLength"]), 1 << 20)

    def _stat_object(self, ref: str) -> tuple[str, int] | None:
        from botocore.exceptions import ClientError

        try:
            head = self.c.head_object(Bucket=self.bucket, Key=self.key(ref))
        except ClientError:
            return None
        return "file", head["ContentLength"]

    def _referenced(self) -> set[str] | None:
        """Keys (relative to the root) that committed backups refer to; None when a manifest cannot be
        read (no key): then nothing may be removed that might be referenced."""
        refs: set[str] = set()
        for day, backup_id, problem in self._candidates():
            try:
                info = self._load(day, backup_id, problem)
            except IncompleteBackup:
                continue  # no manifest: it refers to nothing
            except (KeyMissing, BackupError):
                return None  # a manifest we cannot read may refer to anything
            refs.update(e.object for e in info.collections.values() if e.object)
        return refs

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            if batch:
                with s3_errors("deleting objects", self.url):
                    self.c.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def _remove(self, day: str, backup_id: str) -> None:
        prefix = self.key(f"{day}/{backup_id}/")
        keys = [k for k, _, _ in self._list(prefix)]
        manifests = [k for k in keys if k.rsplit("/", 1)[-1] in (MANIFEST, MANIFEST_ENC)]
        self._delete_keys(manifests)  # the backup disappears at once, then its files go ...
        referenced = self._referenced()
        if referenced is None:
            return  # ... unless some manifest cannot be read: its references are unknown; sweep later
        # ... except data that kept backups still refer to (deduplicated): that stays until none does
        self._delete_keys([k for k in keys if k not in manifests and k[len(self.prefix_slash):] not in referenced])

    def lock(self, operation: str, timeout: float = 10.0, *, exclusive: bool = True):
        return self._lock.hold(operation, timeout)

    def check_lock(self) -> None:
        if self._lock.lost:
            raise StorageError(f"this process lost the lock of {self.url} (it did not renew it in time); "
                               "nothing was committed", hint="run the operation again")

    def state(self, area: str) -> S3StateFiles:
        return S3StateFiles(self, area)

    def audit_log(self) -> BlobAuditLog:
        return BlobAuditLog(_Blobs(self), ".audit/", f"{self.url}/.audit/", self.keyring)

    def _incomplete(self) -> dict[str, tuple[list[str], float]]:
        """Backup prefixes without a manifest: prefix -> (keys, seconds since the newest was written)."""
        now = time.time()
        out: dict[str, tuple[list[str], float]] = {}
        for day in WEEKDAYS:
            groups: dict[str, list[tuple[str, float]]] = {}
            for key, _size, modified in self._list(self.key(f"{day}/")):
                rest = key[len(self.key(f"{day}/")):]
                backup_id = rest.split("/", 1)[0]
                groups.setdefault(backup_id, []).append((key, modified.timestamp()))  # type: ignore[union-attr]
            for backup_id, items in groups.items():
                names = {k.rsplit("/", 1)[-1] for k, _ in items}
                if MANIFEST in names or MANIFEST_ENC in names:
                    continue
                out[self.location(day, backup_id)] = ([k for k, _ in items], now - max(t for _, t in items))
        return out

    def sweep(self) -> list[str]:
        removed = []
        incomplete = {w: v for w, v in self._incomplete().items() if v[1] > LOCK_TTL_S}
        if not incomplete:
            return removed
        referenced = self._referenced()
        if referenced is None:
            return removed
        for where, (keys, _age) in incomplete.items():
            # older than any live writer's lock: a killed writer's or deleter's, but keep what kept
            # backups still refer to
            doomed = [k for k in keys if k[len(self.prefix_slash):] not in referenced]
            if doomed:
                self._delete_keys(doomed)
                removed.append(where)
        return removed

    def leftovers(self) -> list[str]:
        referenced = self._referenced() or set()
        return [w for w, (keys, _) in self._incomplete().items()
                if any(k[len(self.prefix_slash):] not in referenced for k in keys)]

    def usage(self) -> int:
        """Bytes the backups take in the bucket (shared data is stored, and counted, once)."""
        return sum(size for day in WEEKDAYS for _k, size, _ in self._list(self.key(f"{day}/")) if size > 0)
