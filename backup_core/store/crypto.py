"""Client-side encryption: key files, the keyring, and authenticated, chunked encryption of stored files.

A key file (``python -m backup_core keygen --out FILE``, mode 0600) holds 32
random bytes; its *fingerprint* (16 hex digits of a SHA-256 over the key)
names it in messages and in every encrypted file. ``BACKUP_KEY_FILE`` is the
key new backups are encrypted with; ``BACKUP_KEY_FILES`` lists older keys that
are only read. Losing a key loses every backup encrypted with it.

An encrypted file is a 32-byte header followed by chunks::

    header = b"BKCE" | version (1 byte, 1) | reserved (3 bytes, 0)
           | key fingerprint (8 bytes) | salt (16 bytes)
    chunk  = AES-256-GCM(file key, nonce = chunk number (8 bytes BE) + 4 zero bytes,
                         plaintext up to 1 MiB, aad = header | chunk number | last flag)

The file key is HKDF-SHA256(key, salt, "backup_core file v1"): every file has
its own key, so nonces never repeat. Each chunk is authenticated, the chunk
number in the nonce stops reordering, and the last-chunk flag in the
associated data stops truncation; a flipped byte anywhere fails decryption.
``AESGCM`` from ``cryptography`` does the cipher; nothing here invents one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import ConfigError, IntegrityError, KeyMissing, UsageError
from ..fsutil import atomic_write
from ..timeutil import now_iso

MAGIC = b"BKCE"
VERSION = 1
HEADER = struct.Struct(">4sB3x8s16s")  # magic, version, fingerprint, salt
CHUNK = 1 << 20
TAG = 16
CIPHER = "AES-256-GCM"
KEY_TYPE = "backup_core encryption key"


def fingerprint_of(key: bytes) -> str:
    return hashlib.sha256(b"backup_core key fingerprint\x00" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Key:
    material: bytes
    path: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.material)

    def _file_key(self, salt: bytes) -> AESGCM:
        okm = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"backup_core file v1").derive(self.material)
        return AESGCM(okm)

    def name_for(self, text: str) -> str:
        """A stable, unreadable stand-in for a name (collection file names of encrypted backups)."""
        return hmac.new(self.material, b"name\x00" + text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def content_id(self, sha256_hex: str) -> str:
        """A keyed identity of some content (equal content under the same key dedups; the hash itself
        is never stored in clear)."""
        return hmac.new(self.material, b"content\x00" + sha256_hex.encode(), hashlib.sha256).hexdigest()


def generate_key_file(path: Path | str) -> Key:
    """Write a new random key to ``path`` (mode 0600); refuses to overwrite an existing file."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise UsageError(f"{path} already exists; a key file is never overwritten (losing a key loses "
                         "every backup encrypted with it)")
    key = Key(os.urandom(32), str(path))
    body = {"type": KEY_TYPE, "version": 1, "created_at": now_iso(), "fingerprint": key.fingerprint,
            "cipher": CIPHER, "key": base64.b64encode(key.material).decode("ascii")}
    try:
        atomic_write(path, json.dumps(body, indent=2) + "\n", mode=0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the key file {path}: {exc.strerror}") from None
    return key


def load_key_file(path: Path | str) -> Key:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist",
                          hint="create one with `python -m backup_core keygen --out FILE`") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read key file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        if data.get("type") != KEY_TYPE:
            raise ValueError("not a backup_core key file")
        material = base64.b64decode(data["key"], validate=True)
        if len(material) != 32:
            raise ValueError("the key is not 32 bytes")
    except (AttributeError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"key file {path} is not a valid key: {exc}") from None
    key = Key(material, str(path))
    if data.get("fingerprint") not in (None, key.fingerprint):
        raise ConfigError(f"key file {path} is damaged: its fingerprint does not match its key")
    return key


@dataclass(frozen=True)
class Keyring:
    """The key new backups are written with (``current``, may be None) and every key that may be read."""

    current: Key | None = None
    older: tuple[Key, ...] = ()

    @classmethod
    def load(cls, key_file: str | None, key_files: Iterable[str] = ()) -> "Keyring":
        current = load_key_file(key_file) if key_file else None
        older = tuple(load_key_file(p) for p in key_files if p and (not key_file or Path(p) != Path(key_file)))
        return cls(current, older)

    @property
    def keys(self) -> tuple[Key, ...]:
        return ((self.current,) if self.current else ()) + self.older

    def get(self, fingerprint: str, what: str) -> Key:
        for key in self.keys:
            if key.fingerprint == fingerprint:
                return key
        have = ", ".join(k.fingerprint for k in self.keys) or "none"
        raise KeyMissing(f"{what} is encrypted with key {fingerprint}, which is not configured "
                         f"(configured keys: {have}); nothing was read or changed", fingerprint=fingerprint,
                         hint="set BACKUP_KEY_FILE, or list the old key file in BACKUP_KEY_FILES")


def is_encrypted(head: bytes) -> bool:
    return head[:4] == MAGIC


def header_fingerprint(head: bytes) -> str:
    if len(head) < HEADER.size or not is_encrypted(head):
        raise IntegrityError("not an encrypted file")
    magic, version, fp, _salt = HEADER.unpack_from(head)
    if version != VERSION:
        raise IntegrityError(f"encrypted with an unknown scheme version {version}",
                             hint="upgrade the backup tool")
    return fp.hex()


def _nonce(counter: int) -> bytes:
    return struct.pack(">Q", counter) + b"\x00\x00\x00\x00"


def _aad(header: bytes, counter: int, last: bool) -> bytes:
    return header + struct.pack(">QB", counter, 1 if last else 0)


class EncryptingWriter(io.RawIOBase):
    """Encrypts everything written to it into ``out`` (left open on close); call ``close()`` to finish."""

    def __init__(self, out: BinaryIO, key: Key) -> None:
        self._out = out
        salt = os.urandom(16)
        self._header = HEADER.pack(MAGIC, VERSION, bytes.fromhex(key.fingerprint), salt)
        self._aead = key._file_key(salt)
        self._buf = bytearray()
        self._counter = 0
        self._out.write(self._header)
        self._done = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self._buf += b
        while len(self._buf) > CHUNK:  # keep at least one byte back: the last chunk is flagged as such
            self._emit(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(b)

    def _emit(self, chunk: bytes, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._counter), chunk, _aad(self._header, self._counter, last)))
        self._counter += 1

    def close(self) -> None:
        if not self._done and not self.closed:
            self._done = True
            self._emit(bytes(self._buf), last=True)
            self._buf.clear()
        super().close()


class DecryptingReader(io.RawIOBase):
    """Decrypts an encrypted stream chunk by chunk; any tampering raises ``IntegrityError``."""

    def __init__(self, src: BinaryIO, keyring: Keyring, what: str) -> None:
        self._src = src
        self.what = what
        header = _read_exactly(src, HEADER.size)
        self.fingerprint = header_fingerprint(header)
        key = keyring.get(self.fingerprint, what)
        _magic, _version, _fp, salt = HEADER.unpack(header)
        self._header = header
        self._aead = key._file_key(salt)
        self._counter = 0
        self._plain = b""
        self._pos = 0
        self._ended = False
        self._pending = _read_exactly(src, CHUNK + TAG, allow_short=True)

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> bool:
        if self._ended:
            return False
        current = self._pending
        following = _read_exactly(self._src, CHUNK + TAG, allow_short=True)
        last = not following
        if len(current) < TAG or (not last and len(current) != CHUNK + TAG):
            raise IntegrityError(f"{self.what}: the encrypted data is truncated or damaged")
        try:
            self._plain = self._aead.decrypt(_nonce(self._counter), current,
                                             _aad(self._header, self._counter, last))
        except InvalidTag:
            raise IntegrityError(f"{self.what}: does not decrypt with key {self.fingerprint} "
                                 "(changed, damaged or truncated)") from None
        self._pos = 0
        self._counter += 1
        self._pending = following
        self._ended = last
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        while self._pos >= len(self._plain):
            if not self._next_chunk():
                return 0
        n = min(len(b), len(self._plain) - self._pos)
        b[:n] = self._plain[self._pos:self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        try:
            self._src.close()
        finally:
            super().close()


def _read_exactly(src: BinaryIO, n: int, allow_short: bool = False) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = src.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    data = b"".join(parts)
    if len(data) < n and not allow_short:
        raise IntegrityError("the encrypted data is truncated (no complete header)")
    return data


def encrypt_bytes(data: bytes, key: Key) -> bytes:
    out = io.BytesIO()
    w = EncryptingWriter(out, key)
    w.write(data)
    w.close()
    return out.getvalue()


def decrypt_bytes(data: bytes, keyring: Keyring, what: str) -> bytes:
    with DecryptingReader(io.BytesIO(data), keyring, what) as r:
        return r.read()
