"""``status``: the database, its collections, the newest backup, the scheduler and any leftovers, at a glance."""

from __future__ import annotations

from ..api import BackupSystem


def register(sub):
    p = sub.add_parser("status", help="database, newest backup, scheduler status and leftovers")
    p.set_defaults(handler=run)
    return p


def run(args, settings):
    with BackupSystem.from_settings(settings) as system:
        return system.status()
