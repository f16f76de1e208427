"""Runs ``python -m backup_core ARGS`` with an optional pause, so a test can kill it at a known point.

``FAULT_PAUSE=after-first-collection``: a backup stops (prints ``FAULT: paused``
to stderr and sleeps) once the first collection's CSV is fully written into the
temporary folder, i.e. in the middle of the backup. Restores pause with the
product's own hook (``BACKUP_CORE_TEST_PAUSE=staging|swap``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backup_core import backup  # noqa: E402
from backup_core.cli import main  # noqa: E402

if os.environ.get("FAULT_PAUSE") == "after-first-collection":
    _original = backup.write_collection

    def write_collection(*args, **kwargs):
        out = _original(*args, **kwargs)
        print("FAULT: paused", file=sys.stderr, flush=True)
        time.sleep(120)
        return out

    backup.write_collection = write_collection

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
