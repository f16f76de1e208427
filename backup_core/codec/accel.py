"""The compiled accelerator: the codec's hot loops in C (``_speedups.c``), optional.

``_speedups`` is the compiled twin of three loops: the schema pass's
top-level walk (``schema.SchemaBuilder.add``), encoding one raw document
into a row (``rows.RowEncoder``) and decoding one row into raw BSON
(``rows.RowDecoder``). Each returns exactly what the exact walker returns
or ``None`` for "not handled here" (malformed BSON, a rare type or text
form, ...), and the exact walker then runs, which also raises the format's
errors. So the CSV written and the bytes restored never depend on whether
the extension is there (property-tested in ``tests/codec/test_accel.py``).

It is built by ``pip install -e .`` (``make setup``, see setup.py) as an
optional extension: without a compiler the install still succeeds and the
codec runs the exact walker (pure Python; docs/PERFORMANCE.md has the cost).
``info()`` (``codec.accelerator()``) says which path is active and why. An
extension built from another ``_speedups.c`` than the one beside it (a
stale in-place build) is not used. Tests and benchmarks switch it off with
``testseam.exact_codec()``, the one switch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

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
# What rows.py and schema.py check for every document: the extension is loaded (and not switched off
# by ``testseam.exact_codec``).
on = speedups is not None

# documents per step and path (compiled accelerator, exact walker): schema pass (shape), row encode,
# row decode; counted by the callers
COUNTS = dict.fromkeys(("shape_compiled", "shape_exact", "encode_compiled", "encode_exact",
                        "decode_compiled", "decode_exact"), 0)


def stats() -> dict[str, int]:
    """How many documents took each path (compiled, exact), per step, since the last reset.

    For tests and diagnosis: threads encoding at the same time may lose a count now and then.
    """
    return dict(COUNTS)


def reset_stats() -> None:
    for key in COUNTS:
        COUNTS[key] = 0


def build_marker() -> dict[str, Any] | None:
    """What the last build recorded (``{"built": bool, "error"?: str, ...}``), or None if nothing was built here."""
    try:
        data = json.loads(MARKER.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def info() -> dict[str, Any]:
    """Which codec path runs and why: ``{"compiled": bool, "reason": str}``.

    ``compiled``: the C accelerator encodes and decodes rows (else the exact
    walker, pure Python, does everything).
    """
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
        reason += "; using the exact walker (pure Python)"
    return {"compiled": on, "reason": reason}
