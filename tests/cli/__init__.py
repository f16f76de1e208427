"""CLI contract tests: ``python -m backup_core ...`` in a subprocess."""

from __future__ import annotations

import json


def one_json(proc):
    """The single JSON document a successful ``--json`` command prints."""
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected exactly one JSON line, got {proc.stdout!r}"
    return json.loads(lines[0])
