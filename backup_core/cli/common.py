"""Argument helpers shared by the command modules."""

from __future__ import annotations

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
