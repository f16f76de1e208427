"""docs/API.md's runnable example runs as written and prints what the page says."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import ROOT

DOC = ROOT / "docs" / "API.md"


def _example() -> tuple[str, list[str]]:
    text = DOC.read_text()
    code = re.search(r"<!-- example: start -->\n```python\n(.*?)```\n<!-- example: end -->", text, re.S).group(1)
    printed = re.search(r"It prints:\n\n```text\n(.*?)```", text, re.S).group(1).strip().splitlines()
    return code, printed


def test_the_api_example_runs_and_prints_what_the_doc_says(mongo_uri, db_name, root, tmp_path, client):
    code, printed = _example()
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "MONGODB_URI": mongo_uri, "MONGODB_DB": db_name, "BACKUP_ROOT": str(root),
           "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
    finally:
        client.drop_database(db_name)
        client.drop_database(f"{db_name}_backup_meta")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == len(printed)
    for got, want in zip(lines, printed):
        assert re.fullmatch(re.escape(want).replace(re.escape("<id>"), r"\d{8}T\d{6}Z(-\d+)?"), got), (got, want)
