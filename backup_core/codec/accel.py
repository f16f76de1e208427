"""The compiled accelerator: the codec's hot loops in C (``_speedups.c``), optional, with a switch.

``_speedups`` is the compiled twin of three loops: the schema pass's
top-level walk (``schema.SchemaBuilder.add``), encoding one raw document
into a row (``rows.RowEncoder``) and decoding one row into raw BSON
(``rows.RowDecoder``). Each returns exactly what the exact walker returns
or ``None`` for "not handled here" (malformed BSON, a rare type or text
form, ...), and the Python paths then run as before: first pymongo's C
extension (``fast.py``), then the exact walker, which also raises the
format's errors. So the CSV written and the bytes restored never depend on
whether the extension is there (property-tested in
``tests/codec/test_accel.py``).

It is built by ``pip install -e .`` (``make setup``, see setup.py) as an
optional extension: without a compiler the install still succeeds and the
codec runs its Python paths. ``info()`` (``codec.accelerator()``) says which
path is active and why; ``disabled()`` switches it off, e.g. to compare;
``fast.disabled()`` switches it off too (every document then takes the
exact walker). An extension built from another ``_speedups.c`` than the one
beside it (a stale in-place build) is not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

_HERE = Path(__file__).resolve().parent
SOURCE = _HERE / "_speedups.c"
MARKER = _HERE / "_speedups.build.json"  # written by setup.py's build_ext: built or why not


def _load() -> tuple[ModuleType | None, str]:
    try:
        from . import _speedups as mod
    except ImportError as exc:
        return None, f"compiled accelerator not importable ({exc})"
    try:
        current = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    except OSError:  # installed without its source (a wheel): nothing to compare with
        current = mod.SOURCE_SHA256
    if mod.SOURCE_SHA256 != current:
        return None, ("compiled accelerator is stale (built from another _speedups.c); "
                      "rebuild it with `.venv/bin/python -m pip install --no-deps -e .`")
    return mod, ""


speedups, _load_problem = _load()
_enabled = True
_fast_enabled = True  # fast.set_enabled keeps this in step
# What rows.py and schema.py check for every document: the extension is loaded and switched on.
on = speedups is not None


def _refresh() -> None:
    global on
    on = speedups is not None and _enabled and _fast_enabled


def available() -> bool:
    """Whether the compiled extension is loaded (built, importable, not stale)."""
    return speedups is not None


def enabled() -> bool:
    """Whether the switch is on (it is unless switched off); see ``info()`` for what actually runs."""
    return _enabled


def set_enabled(flag: bool) -> None:
    """Switch the compiled accelerator on or off, process-wide (the output is the same)."""
    global _enabled
    _enabled = bool(flag)
    _refresh()


def _set_fast_enabled(flag: bool) -> None:
    global _fast_enabled
    _fast_enabled = bool(flag)
    _refresh()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """The Python paths only (pymongo's fast path, then the exact walker) inside this block."""
    before = _enabled
    set_enabled(False)
    try:
        yield
    finally:
        set_enabled(before)


def build_marker() -> dict[str, Any] | None:
    """What the last build recorded (``{"built": bool, "error"?: str, ...}``), or None if nothing was built here."""
    try:
        data = json.loads(MARKER.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def info() -> dict[str, Any]:
    """Which codec path runs and why: ``{"compiled": bool, "fast_path": bool, "reason": str}``.

    ``compiled``: the C accelerator encodes and decodes rows; ``fast_path``:
    pymongo's C extension is there for what it does not handle (else the
    exact walker, pure Python, does everything).
    """
    from . import fast

    fast_path = fast.available() and fast.enabled()
    if on:
        reason = "compiled accelerator (_speedups) in use"
    elif speedups is not None:
        reason = "compiled accelerator built but switched off"
    else:
        marker = build_marker()
        if marker is not None and not marker.get("built"):
            reason = f"compiled accelerator not built: {marker.get('error', 'unknown error')}"
        elif marker is None and not any(_HERE.glob("_speedups*.so")) and not any(_HERE.glob("_speedups*.pyd")):
            reason = "compiled accelerator not built (`make setup` or `pip install -e .` builds it where a C compiler is)"
        else:
            reason = _load_problem
        reason += "; using " + ("pymongo's C extension and the exact walker" if fast_path else "the exact walker")
    return {"compiled": on, "fast_path": fast_path, "reason": reason}
