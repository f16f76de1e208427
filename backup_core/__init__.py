"""MongoDB backup & restore: lossless CSV snapshots, compare, restore, scheduling.

The package holds all product logic; the Streamlit pages, the CLI and a host
application's own code are front-ends over it. Nothing in here imports
Streamlit. ``from backup_core import BackupSystem`` is the Python API
(docs/API.md); it is imported on first use, so ``import backup_core`` alone
stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "1.1.0"
__all__ = ["BackupSystem", "__version__"]

if TYPE_CHECKING:
    from .api import BackupSystem


def __getattr__(name: str) -> Any:
    if name == "BackupSystem":
        from .api import BackupSystem

        return BackupSystem
    raise AttributeError(f"module 'backup_core' has no attribute {name!r}")
