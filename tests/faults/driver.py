"""Runs ``python -m backup_core ARGS`` with an optional pause, so a test can kill it at a known point.

``FAULT_PAUSE=after-first-collection``: a backup stops (prints ``FAULT: paused``
to stderr and sleeps) once the first collection's CSV is written and stored as
a data object, i.e. in the middle of the backup. Restores pause at the
checkpoints of the product's test seam (``BACKUP_CORE_TEST_PAUSE=fill|swap``,
``backup_core/testseam.py``).
"""

from __future__ import annotations

import os
import sys
import time

from backup_core.cli import main
from backup_core.store import writer

if os.environ.get("FAULT_PAUSE") == "after-first-collection":
    _original = writer.BackupWriter.write_spilled

    def write_spilled(*args, **kwargs):
        out = _original(*args, **kwargs)
        print("FAULT: paused", file=sys.stderr, flush=True)
        time.sleep(120)
        return out

    writer.BackupWriter.write_spilled = write_spilled

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
