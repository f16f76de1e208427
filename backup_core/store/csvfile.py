"""The CSV data file of one collection: writing it from raw BSON, reading its rows back.

Writing (``write_csv``): the documents are read once from the database; the
first pass (``Spill``) spills the raw BSON to a scratch file while the codec
learns the columns and their types, the second pass (``encode_csv``) reads the
spill file (all of it, or the documents a selection marks) and writes the
rows. Memory stays bounded by one batch, never one collection, and the CSV
reflects exactly the documents that were read. The bytes are hashed and
counted as they are written (gzip with ``mtime=0`` and no name, so equal
content gives equal bytes).

Reading (``RowReader``): the file is read line by line as bytes and each line
decoded as strict UTF-8 before the ``csv`` module sees it, so an encoding
error names the line it is on; a byte-order mark is refused; the header must
match the manifest's columns.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

from .. import codec
from ..errors import CodecError, FormatError

READ_BLOCK = 1 << 20  # bytes read at a time from an unbuffered stream

_LEN = struct.Struct("<i")
PROGRESS_EVERY = 500


class CountingWriter(io.RawIOBase):
    """Passes bytes through to a binary stream while counting them (and, with ``sha256``, hashing them)."""

    def __init__(self, fh: BinaryIO, *, sha256: bool = False) -> None:
        self._fh = fh
        self.sha256 = hashlib.sha256() if sha256 else None
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        n = self._fh.write(b)
        n = len(b) if n is None else n
        if self.sha256 is not None:
            self.sha256.update(memoryview(b)[:n])
        self.bytes += n
        return n

    def flush(self) -> None:
        # also called when this wrapper is garbage collected, maybe after the file was closed
        if not getattr(self._fh, "closed", False):
            self._fh.flush()


@dataclass
class WrittenFile:
    count: int
    schema: codec.Schema
    bytes: int  # as written (gzip bytes for a compressed file)
    sha256: str  # of those bytes
    plain_bytes: int = -1  # the CSV text's size before compression


class Spill:
    """Raw documents spilled to a scratch file while the columns are learned: the first of two passes.

    ``add`` writes a document and teaches ``builder`` its fields; ``documents``
    reads them back in order, all or those whose position ``select`` marks
    (a ``bytearray``, 1 = keep). With ``key`` (a ``crypto.Key``) the file is
    encrypted. The file is removed by ``close``.
    """

    def __init__(self, path: Path, key=None) -> None:
        self.path, self.key = path, key
        self.builder = codec.SchemaBuilder()
        self.count = 0
        self._raw = path.open("xb", buffering=0)
        self._enc = None
        out: BinaryIO = self._raw  # type: ignore[assignment]
        if key is not None:
            from .crypto import EncryptingWriter

            self._enc = EncryptingWriter(self._raw, key)
            out = self._enc  # type: ignore[assignment]
        self._out: BinaryIO | None = io.BufferedWriter(out, 1 << 20)  # type: ignore[arg-type]

    def add(self, raw: bytes) -> None:
        self.builder.add(raw)
        self._out.write(raw)  # type: ignore[union-attr]
        self.count += 1

    def finish(self) -> None:
        """No more documents: flush the file (``documents`` may then read it)."""
        if self._out is not None:
            out, self._out = self._out, None
            out.flush()
            if self._enc is not None:
                self._enc.close()
            self._raw.close()

    def schema(self) -> codec.Schema:
        return self.builder.build()

    def documents(self, select: bytearray | None = None) -> Iterator[bytes]:
        self.finish()
        with self.path.open("rb", buffering=1 << 20) as raw:
            fh: BinaryIO = raw
            if self.key is not None:
                from .crypto import DecryptingReader, Keyring

                fh = io.BufferedReader(DecryptingReader(raw, Keyring(self.key), "a spill file"), 1 << 20)  # type: ignore[arg-type]
            position = 0
            while head := fh.read(4):
                n = _LEN.unpack(head)[0]
                doc = head + fh.read(n - 4)
                if select is None or select[position]:
                    yield doc
                position += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.finish()
        with contextlib.suppress(Exception):
            self._raw.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Spill":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_csv(docs: Iterable[bytes], out: BinaryIO, spill_path: Path, *, compress: bool,
              progress: Callable[[int], None] | None = None, spill_key=None) -> WrittenFile:
    """Encode raw BSON documents into one CSV file written to ``out`` (left open).

    ``progress(steps)`` counts one step per document read and one per row written. With
    ``spill_key`` (a ``crypto.Key``) the raw documents spilled to ``spill_path`` are encrypted.
    """
    with Spill(spill_path, spill_key) as spill:
        for raw in docs:
            spill.add(raw)
            if progress and spill.count % PROGRESS_EVERY == 0:
                progress(spill.count)
        return encode_csv(spill.documents(), spill.schema(), out, compress=compress, progress=progress,
                          done_before=spill.count)


def encode_csv(docs: Iterable[bytes], schema: codec.Schema, out: BinaryIO, *, compress: bool,
               progress: Callable[[int], None] | None = None, done_before: int = 0) -> WrittenFile:
    """The second pass: the header of ``schema``, then one row per document, to ``out`` (left open),
    counted and hashed as written (gzip with ``mtime=0``: equal content, equal bytes)."""
    encoder = codec.RowEncoder(schema)
    hasher = CountingWriter(out, sha256=True)
    buffered = io.BufferedWriter(hasher, 1 << 20)
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=buffered, mtime=0) if compress else None
    counted = CountingWriter(gz) if gz is not None else None  # the CSV text's size before gzip
    plain = io.BufferedWriter(counted, 1 << 20) if counted is not None else None
    text = io.TextIOWrapper(plain or buffered, encoding="utf-8", newline="")
    count = 0
    try:
        writer = csv.writer(text)
        writer.writerow(schema.header())
        for count, raw in enumerate(docs, 1):
            writer.writerow(encoder.encode(raw))
            if progress and count % PROGRESS_EVERY == 0:
                progress(done_before + count)
        text.flush()
        text.detach()
        plain_bytes = -1
        if gz is not None:
            plain.flush()  # type: ignore[union-attr]
            plain_bytes = plain.detach().bytes  # type: ignore[union-attr]
            gz.close()  # writes the gzip trailer; leaves ``buffered`` open
        buffered.flush()
        buffered.detach()
    except BaseException:
        # close every wrapper now (their final flush fails too, e.g. disk full, also when the
        # failure comes from the last flushes), so that none is left to the garbage collector
        # to flush into a closed file later; a detached one refuses politely
        for layer in (text, plain, counted, gz, buffered, hasher):
            if layer is not None:
                with contextlib.suppress(Exception):
                    layer.close()
        raise
    if gz is None:
        plain_bytes = hasher.bytes
    return WrittenFile(count, schema, hasher.bytes, hasher.sha256.hexdigest(),  # type: ignore[union-attr]
                       plain_bytes)


class RowReader:
    """Iterates the data rows of one CSV file (a binary stream), checking encoding and header.

    ``record`` is the number of the current data row (1 = the first document),
    ``line`` the physical line the reader is on.
    """

    def __init__(self, stream: BinaryIO, schema: codec.Schema, *, compressed: bool, label: str,
                 owns_stream: bool = True) -> None:
        self.schema = schema
        self.label = label
        self._raw = stream
        self._owns = owns_stream
        if compressed:
            self._stream: BinaryIO = gzip.GzipFile(fileobj=stream, mode="rb")
        elif isinstance(stream, io.RawIOBase):
            # lines from a raw stream would be read a byte at a call: read it in large blocks instead
            self._stream = io.BufferedReader(stream, READ_BLOCK)  # type: ignore[assignment]
        else:
            self._stream = stream
        self.line = 0
        self.record = 0
        self._reader = csv.reader(self._lines(), strict=True)
        header = self._next()
        if header is None or header != schema.header():
            self.close()
            raise FormatError(f"{label}: header does not match the manifest's columns")

    def _lines(self) -> Iterator[str]:
        for raw in self._stream:
            self.line += 1
            if self.line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raise FormatError(f"{self.label} starts with a byte-order mark; backup files are plain UTF-8")
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise FormatError(f"{self.label}: not valid UTF-8 on line {self.line} "
                                  f"(byte {exc.start + 1} of the line)") from None

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            raise FormatError(f"{self.label}, line {self._reader.line_num}: {exc}") from None
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise FormatError(f"{self.label}: damaged file ({exc})") from None

    def __iter__(self) -> Iterator[list[str]]:
        while (row := self._next()) is not None:
            self.record += 1
            yield row

    def documents(self) -> Iterator[bytes]:
        """Raw BSON documents, in file order, strictly decoded."""
        decoder = codec.RowDecoder(self.schema)
        for row in self:
            try:
                yield decoder.decode(row)
            except CodecError as exc:
                raise CodecError(f"{self.label}, row {self.record} (line {self.line}): {exc}") from None

    def close(self) -> None:
        if isinstance(self._stream, io.BufferedReader) and self._stream.raw is self._raw:
            with contextlib.suppress(Exception):
                self._stream.detach()  # leaves the stream it reads from open (what it read ahead is read)
        elif self._stream is not self._raw:
            with contextlib.suppress(Exception):
                self._stream.close()  # a GzipFile leaves the stream it reads from open
        if self._owns:
            with contextlib.suppress(Exception):
                self._raw.close()

    def __enter__(self) -> "RowReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
