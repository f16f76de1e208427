"""What the command modules share: argument helpers, number types, and text made safe for a terminal."""

from __future__ import annotations

import math
import re

from ..errors import UsageError


def collections_arg(value: str | None) -> list[str] | None:
    """``--collections a,b`` -> ["a", "b"]; None when not given."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not n for n in names):
        raise UsageError(f"invalid --collections {value!r}: give comma-separated collection names")
    return list(dict.fromkeys(names))


def add_collections(p, help_text: str = "comma-separated collection names (default: all)") -> None:
    p.add_argument("--collections", metavar="A,B", help=help_text)


# ---------------------------------------------------------------- text for a terminal

# C0 controls but newline and tab, DEL, C1 controls (0x9b is a one-byte CSI), bidirectional overrides
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROLS_AND_NEWLINES = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# what JSON may carry raw (json.dumps escapes C0 itself) but a terminal would act on
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` made harmless for a terminal: control characters (escape sequences, carriage returns,
    bells, bidirectional overrides) are shown as ``\\x1b``-style escapes, so a collection name or any other
    text from the database cannot move the cursor, recolour, retitle or hide output. Newlines and tabs
    stay, unless ``one_line``."""
    return (_CONTROLS_AND_NEWLINES if one_line else _CONTROLS).sub(_escape, text)


def json_printable(text: str) -> str:
    """A JSON document with the characters a terminal would act on written as ``\\uXXXX`` escapes: the
    same JSON value, byte-safe on a terminal."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# ---------------------------------------------------------------- numbers on the command line

def number_type(what: str, low: float, high: float | None, *, unit: str = "", integer: bool = False):
    """An argparse ``type`` for a finite number from ``low`` to ``high`` (None: no upper bound): nan, inf,
    out-of-range values and non-numbers are refused with one line that says what is allowed."""
    import argparse

    span = (f"between {low:g} and {high:g}" if high is not None else f"of {low:g} or more") + \
        (f" {unit}" if unit else "")
    kind = "a whole number" if integer else "a number"

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except (TypeError, ValueError):
            value = None
        if value is None or not math.isfinite(value) or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{what} must be {kind} {span}, got {text!r}")
        return value

    return parse
