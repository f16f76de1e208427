"""Sizes for people: one formatter for the CLI's text and the dashboard."""

from __future__ import annotations


def format_bytes(n: int | float | None) -> str:
    """``512 B``, ``1.5 KB``, ``3.2 MB`` (powers of 1024); ``–`` for an unknown size."""
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
