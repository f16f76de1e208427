"""Runs ``python -m backup_core ARGS`` with an optional pause, so a test can kill it at a known point.

``FAULT_PAUSE=after-first-collection``: a backup stops (prints ``FAULT: paused``
to stderr and sleeps) once the first collection's CSV is fully written into the
temporary folder, i.e. in the middle of the backup. Restores pause at the
checkpoints of the product's test seam (``BACKUP_CORE_TEST_PAUSE=fill|swap``,
``backup_core/testseam.py``).
"""

from __future__ import annotations

import os
import sys
import time

from backup_core import backup
from backup_core.cli import main

if os.environ.get("FAULT_PAUSE") == "after-first-collection":
    _original = backup.write_csv

    def write_csv(*args, **kwargs):
        out = _original(*args, **kwargs)
        print("FAULT: paused", file=sys.stderr, flush=True)
        time.sleep(120)
        return out

    backup.write_csv = write_csv

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
