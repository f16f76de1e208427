"""The backup UI's sections, each ``render(ui)``: drawn by the dashboard's pages and by ``backup_restore_ui``.

A section draws inside whatever container it is called in: no page
configuration, no title of its own, no navigation, widget keys through
``Ui.k``. ``SECTIONS`` is the order a host's backup tab offers them in.
"""

from __future__ import annotations

from webui.sections import audit, auto_backup, browse, create, home, restore

SECTIONS = {
    "Create Backup": create.render,
    "Restore": restore.render,
    "Auto Backup": auto_backup.render,
    "Browse Backups": browse.render,
    "Audit Log": audit.render,
}

__all__ = ["SECTIONS", "audit", "auto_backup", "browse", "create", "home", "restore"]
