"""The object-store backend: blobs in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...).

``BACKUP_ROOT=s3://bucket/prefix``. Every blob is one object under the prefix.
``save`` of a small blob is one ``PutObject`` with ``If-None-Match: *`` (the
object store refuses to replace an existing name: create-if-absent is
atomic); a large one is uploaded in parts after a ``HeadObject`` found the
name free (large blobs are content-addressed data: a concurrent writer of
the same name writes the same content). Reads resume with a ``Range`` request
after a dropped connection. Ages come from the store's clock (``LastModified``
against the response's ``Date``).

Client: boto3 (see the README for why). Endpoint and credentials come the
standard AWS way (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, instance roles), read by boto3
itself. Retries with backoff on throttling and transient errors are botocore's
"standard" mode. ``requests`` counts the calls this process made (for the
request budget test and benchmark).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import BinaryIO, Iterator

from ...config import aws_environment
from ...errors import StorageError
from . import Backend, Entry, check_name

READ_RETRIES = 5
RETRY_ATTEMPTS = 6  # botocore "standard" retries: throttling and transient errors, with backoff
SINGLE_PUT_MAX = 8 << 20
_CLIENTS: dict[tuple, object] = {}
_CLIENTS_GUARD = threading.Lock()


class PreconditionFailed(Exception):
    """A conditional write lost a race (the object exists already)."""


class _Counter:
    """S3 calls made by this process, by operation name (botocore's event hook)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.log: list[tuple[str, str | None]] = []  # (operation, key or prefix), the latest calls
        self._guard = threading.Lock()

    def __call__(self, model=None, params=None, **_kw) -> None:
        name = getattr(model, "name", "?")
        with self._guard:
            self.calls[name] = self.calls.get(name, 0) + 1
            self.log.append((name, (params or {}).get("Key") or (params or {}).get("Prefix")))

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        with self._guard:
            self.calls.clear()
            self.log.clear()


requests = _Counter()


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
                            read_timeout=60, s3={"addressing_style": "auto"}, max_pool_connections=20)
            c = boto3.session.Session().client("s3", config=config)
            c.meta.events.register("before-parameter-build.s3", requests)
            _CLIENTS[key] = c
        return c


def _code(exc: BaseException) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _missing(exc: BaseException) -> bool:
    return _code(exc) in ("NoSuchKey", "404", "NotFound")


@contextlib.contextmanager
def s3_errors(what: str, where: str) -> Iterator[None]:
    """Turn boto errors into one-line StorageErrors that say what to check."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code in ("PreconditionFailed", "412"):
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


def _server_now(response: dict) -> float:
    try:
        return parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return time.time()


class S3Backend(Backend):
    def __init__(self, url: str) -> None:
        self.bucket, self.prefix = parse_url(url)
        self.prefix_slash = f"{self.prefix}/" if self.prefix else ""
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.c = client()

    def __repr__(self) -> str:
        return f"S3Backend({self.url!r})"

    @property
    def identity(self) -> str:
        endpoint = getattr(self.c.meta, "endpoint_url", "")
        return f"s3:{endpoint}/{self.bucket}/{self.prefix}"

    def key(self, name: str) -> str:
        return self.prefix_slash + check_name(name)

    # ---- the verbs
    def save(self, name: str, source) -> bool:
        key = self.key(name)
        size = _size_of(source)
        if size is not None and size <= SINGLE_PUT_MAX:
            body = _bytes_of(source)
            try:
                with s3_errors(f"writing {name}", self.url):
                    self.c.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            except PreconditionFailed:
                return False
            return True
        if self.stat(name) is not None:
            return False
        self._upload(name, key, source)
        return True

    def _upload(self, name: str, key: str, source) -> None:
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=SINGLE_PUT_MAX, multipart_chunksize=SINGLE_PUT_MAX,
                                max_concurrency=4)
        try:
            with s3_errors(f"uploading {name}", self.url):
                if isinstance(source, Path):
                    self.c.upload_file(str(source), self.bucket, key, Config=config)
                else:
                    self.c.upload_fileobj(source, self.bucket, key, Config=config)
        except S3UploadFailedError as exc:
            raise StorageError(f"uploading {name} to {self.url} failed: {' '.join(str(exc).split())}",
                               hint="check the endpoint, the bucket and the credentials") from None

    def load(self, name: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return io.BufferedReader(_ObjectReader(self, self.key(name), offset, length), 1 << 20)  # type: ignore[arg-type]

    def read(self, name: str, limit: int) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            with s3_errors(f"reading {name}", self.url):
                try:
                    r = self.c.get_object(Bucket=self.bucket, Key=self.key(name))
                except ClientError as exc:
                    if _missing(exc):
                        return None
                    raise
                return r["Body"].read(limit + 1)
        except PreconditionFailed:  # pragma: no cover - not a conditional read
            return None

    def stat(self, name: str) -> Entry | None:
        from botocore.exceptions import ClientError

        with s3_errors(f"looking at {name}", self.url):
            try:
                r = self.c.head_object(Bucket=self.bucket, Key=self.key(name))
            except ClientError as exc:
                if _missing(exc):
                    return None
                raise
        return Entry(name, r["ContentLength"], max(0.0, _server_now(r) - r["LastModified"].timestamp()),
                     r.get("ETag", ""))

    def list(self, prefix: str = "", *, after: str | None = None) -> Iterator[Entry]:
        kw = {"Bucket": self.bucket, "Prefix": self.prefix_slash + prefix}
        if after:
            kw["StartAfter"] = self.prefix_slash + after
        token = None
        while True:
            with s3_errors("listing backups", self.url):
                page = self.c.list_objects_v2(**kw, **({"ContinuationToken": token} if token else {}))
            now = _server_now(page)
            for obj in page.get("Contents", []):
                yield Entry(obj["Key"][len(self.prefix_slash):], obj["Size"],
                            max(0.0, now - obj["LastModified"].timestamp()), obj.get("ETag", ""))
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def remove(self, name: str) -> None:
        with s3_errors(f"deleting {name}", self.url):
            self.c.delete_object(Bucket=self.bucket, Key=self.key(name))

    def remove_many(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = [{"Key": self.key(n)} for n in names[start:start + 1000]]
            if batch:
                with s3_errors("deleting objects", self.url):
                    self.c.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def put(self, name: str, data: bytes) -> None:
        with s3_errors(f"writing {name}", self.url):
            self.c.put_object(Bucket=self.bucket, Key=self.key(name), Body=data)


def _size_of(source) -> int | None:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return len(source)
    if isinstance(source, Path):
        return source.stat().st_size
    return None


def _bytes_of(source) -> bytes:
    if isinstance(source, Path):
        return source.read_bytes()
    return bytes(source)


class _ObjectReader(io.RawIOBase):
    """An object read as a stream; a dropped connection resumes where it stopped (Range)."""

    def __init__(self, backend: S3Backend, key: str, offset: int = 0, length: int | None = None) -> None:
        self.b, self.key = backend, key
        self.pos = offset
        self.end = None if length is None else offset + length
        self._body = None
        self._open()  # a missing object fails here, as FileNotFoundError

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        from botocore.exceptions import ClientError

        rng = None
        if self.pos or self.end is not None:
            rng = f"bytes={self.pos}-{'' if self.end is None else self.end - 1}"
        with s3_errors(f"reading {self.key}", self.b.url):
            try:
                r = self.b.c.get_object(Bucket=self.b.bucket, Key=self.key, **({"Range": rng} if rng else {}))
            except ClientError as exc:
                if _missing(exc):
                    raise FileNotFoundError(self.key) from None
                if _code(exc) == "InvalidRange":  # reading from the very end of an object
                    self._body = io.BytesIO(b"")
                    return
                raise
        self._body = r["Body"]

    def readinto(self, b) -> int:  # type: ignore[override]
        want = len(b) if self.end is None else min(len(b), self.end - self.pos)
        if want <= 0:
            return 0
        for attempt in range(READ_RETRIES):
            try:
                if self._body is None:
                    self._open()
                data = self._body.read(want)  # type: ignore[union-attr]
                b[:len(data)] = data
                self.pos += len(data)
                return len(data)
            except FileNotFoundError:
                raise
            except Exception as exc:  # noqa: BLE001 - urllib3/botocore read errors vary
                if isinstance(exc, StorageError) or attempt == READ_RETRIES - 1:
                    raise StorageError(f"reading {self.key} from {self.b.url} failed: {exc}") from None
                self._body = None
                time.sleep(0.2 * (attempt + 1))
        return 0

    def close(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):
                self._body.close()
        super().close()
