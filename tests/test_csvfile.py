"""The CSV data file: written from raw BSON, read back strictly, with errors that name the right line."""

from __future__ import annotations

import io

import bson
import pytest

from backup_core.errors import FormatError
from backup_core.store import RowReader, write_csv


def _file(tmp_path, docs, compress=False):
    out = io.BytesIO()
    written = write_csv((bson.encode(d) for d in docs), out, tmp_path / "spill", compress=compress)
    return written, out.getvalue()


def test_roundtrip(tmp_path):
    docs = [{"_id": i, "s": f"line\nbreak {i}"} for i in range(5)]
    written, data = _file(tmp_path, docs)
    assert written.count == 5 and written.bytes == len(data)
    with RowReader(io.BytesIO(data), written.schema, compressed=False, label="x.csv") as rows:
        assert [bson.decode(d) for d in rows.documents()] == docs
    assert not (tmp_path / "spill").exists()


@pytest.mark.parametrize("bad_line", [2, 3, 5])
def test_invalid_utf8_names_its_line(tmp_path, bad_line):
    written, data = _file(tmp_path, [{"_id": i, "s": f"value {i}"} for i in range(6)])
    lines = data.split(b"\r\n")
    lines[bad_line - 1] = lines[bad_line - 1].replace(b"value", b"val\xffue")
    broken = b"\r\n".join(lines)
    with pytest.raises(FormatError, match=f"not valid UTF-8 on line {bad_line} "):
        with RowReader(io.BytesIO(broken), written.schema, compressed=False, label="x.csv") as rows:
            list(rows.documents())


def test_invalid_utf8_after_a_multiline_cell_names_the_physical_line(tmp_path):
    written, data = _file(tmp_path, [{"_id": 0, "s": "a\nb\nc"}, {"_id": 1, "s": "plain"}])
    broken = data.replace(b"plain", b"pl\xffain")
    with pytest.raises(FormatError, match="line 5 "):
        with RowReader(io.BytesIO(broken), written.schema, compressed=False, label="x.csv") as rows:
            list(rows.documents())


def test_a_bom_is_refused(tmp_path):
    written, data = _file(tmp_path, [{"_id": 1}])
    with pytest.raises(FormatError, match="byte-order mark"):
        RowReader(io.BytesIO(b"\xef\xbb\xbf" + data), written.schema, compressed=False, label="x.csv")


def test_gzip_roundtrip_and_damage(tmp_path):
    written, data = _file(tmp_path, [{"_id": i} for i in range(100)], compress=True)
    with RowReader(io.BytesIO(data), written.schema, compressed=True, label="x.csv.gz") as rows:
        assert sum(1 for _ in rows.documents()) == 100
    with pytest.raises(FormatError, match="damaged"):
        with RowReader(io.BytesIO(data[: len(data) // 2]), written.schema, compressed=True,
                       label="x.csv.gz") as rows:
            list(rows.documents())
