"""What the CLI prints is safe for a terminal, and every number it takes is checked (issue 20, item 7)."""

from __future__ import annotations

import json

import pytest

from tests.cli import one_json

EVIL = "evil\x1b]0;pwned\x07\x1b[2J\x1b[31mred\r\x9b6n\u202egnp.exe"


def _no_controls(text: str) -> None:
    for c in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
        assert c not in text, repr(text)


def test_collection_names_with_escape_sequences_are_shown_not_run(db, cli):
    db[EVIL].insert_one({"_id": 1, "note": "x\x1b[2Jy"})
    db["Equipment"].insert_one({"_id": 1})
    text = cli("backup")
    assert text.returncode == 0, text.stderr
    _no_controls(text.stdout)
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in text.stdout
    status = cli("status")
    _no_controls(status.stdout)
    assert "evil\\x1b]0;pwned" in status.stdout
    raw = cli("backup", "--json")
    _no_controls(raw.stdout)
    assert EVIL in one_json(raw)["collections"]  # JSON keeps the exact name
    listed = cli("list")
    _no_controls(listed.stdout)


def test_an_error_naming_hostile_text_is_one_escaped_line(db, cli):
    db[EVIL + "\nerror: forged second line"].insert_one({"_id": 1})
    bad = cli("backup", "--collections", "nosuch")  # the message lists the collections there are
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    _no_controls(bad.stderr)
    assert "it has evil\\x1b]0;pwned" in bad.stderr and "\\x0aerror: forged second line" in bad.stderr


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args", [
    ("scheduler", "--lease", "nan"), ("scheduler", "--lease", "inf"), ("scheduler", "--lease", "0.001"),
    ("scheduler", "--lease", "-1"), ("scheduler", "--every", "0.001s"), ("scheduler", "--every", "nan"),
    ("scheduler", "--every", "inf"), ("scheduler", "--every", "-1m"), ("scheduler", "--set-interval", "nan"),
    ("scheduler", "--set-interval", "inf"), ("scheduler", "--set-interval", "0.001"),
    ("scheduler", "--max-root-mb", "inf"), ("scheduler", "--max-root-mb", "nan"),
    ("scheduler", "--metrics-port", "nan"), ("scheduler", "--metrics-port", "70000"),
    ("cleanup", "--safety-days", "inf"), ("cleanup", "--safety-days", "nan"), ("cleanup", "--keep-last", "1.5"),
    ("cleanup", "--keep-daily", "-2"), ("cleanup", "--older-than", "nan"), ("cleanup", "--keep-within", "inf"),
    ("audit", "--limit", "0"), ("audit", "--limit", "nan"), ("compare", "X", "--show", "-1"),
    ("import", "x.zip", "--max-mb", "inf"), ("server", "--port", "99999"),
])
def test_every_number_and_duration_is_checked_with_one_line(cli, args):
    proc = cli(*args, timeout=30)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr


def test_json_output_stays_the_same_value(db, cli):
    db["c\x9bd"].insert_one({"_id": 1})
    body = cli("backup", "--json").stdout
    assert "\\u009b" in body and json.loads(body)["collections"]["c\x9bd"]["count"] == 1
