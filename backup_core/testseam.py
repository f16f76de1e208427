"""The one test seam: where tests stop, fail or kill the product, and switch the codec's path.

Product code marks a few points of no return with ``checkpoint(point)``:

- ``"fill"``: a replace-restore filled one swap-in collection (live data untouched so far);
- ``"swap"``: a replace-restore swapped one collection in (or removed one the backup records as absent);
- ``"scheduler-commit"``: a scheduled backup is written and about to check its lease and commit
  (``detail``: the backup id).

Nothing happens there unless a test asks, in one of two ways:

- in the same process, ``with on_checkpoint(fn):`` calls ``fn(point)`` at every
  checkpoint inside the block (``fn`` may raise, to simulate a failure there);
- in a child process (the kill tests), ``BACKUP_CORE_TEST_PAUSE=<point>`` makes
  it print ``BACKUP_CORE_TEST_PAUSE: paused at <point> [detail]`` on stderr and
  sleep ``BACKUP_CORE_TEST_PAUSE_SECONDS`` (default 30) there, so the test can
  kill or freeze it at exactly that point.

``exact_codec()`` makes every document take the codec's exact walker inside
its block (what a machine without a C compiler runs), to compare the two
paths; the output is the same by design.

Product settings (``config.Settings``) and options (``RestoreOptions``) carry
no hooks and the codec has no public switch: this module is the only way in.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Callable, Iterator

PAUSE_ENV = "BACKUP_CORE_TEST_PAUSE"
PAUSE_SECONDS_ENV = "BACKUP_CORE_TEST_PAUSE_SECONDS"
DEFAULT_PAUSE_S = 30.0

_hooks: list[Callable[[str], None]] = []
_guard = threading.Lock()


def checkpoint(point: str, detail: str | None = None) -> None:
    """Mark ``point`` (see the module docstring); a no-op unless a test set a hook or the pause variable."""
    if os.environ.get(PAUSE_ENV) == point:
        try:
            seconds = float(os.environ.get(PAUSE_SECONDS_ENV) or DEFAULT_PAUSE_S)
        except ValueError:
            seconds = DEFAULT_PAUSE_S
        where = f"{point} {detail}" if detail else point
        print(f"{PAUSE_ENV}: paused at {where}", file=sys.stderr, flush=True)
        time.sleep(seconds)
    if _hooks:
        with _guard:
            hooks = list(_hooks)
        for hook in hooks:
            hook(point)


@contextlib.contextmanager
def on_checkpoint(hook: Callable[[str], None]) -> Iterator[None]:
    """Call ``hook(point)`` at every checkpoint reached inside this block, in any thread."""
    with _guard:
        _hooks.append(hook)
    try:
        yield
    finally:
        with _guard:
            _hooks.remove(hook)


@contextlib.contextmanager
def exact_codec() -> Iterator[None]:
    """The codec's exact walker only inside this block, process-wide (see ``codec/accel.py``)."""
    from .codec import accel

    with _guard:
        before, accel.on = accel.on, False
    try:
        yield
    finally:
        with _guard:
            accel.on = before
