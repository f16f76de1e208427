"""How to log in the first time: the demo admin or the one-time admin password.

``make run`` runs ``python -m webui.first_start`` just before it starts
Streamlit, so a fresh checkout prints, once per start and before the URL,
the one-time password of ``admin`` (``backup_core.auth.ensure_initial_admin``)
and where its 0600 file is, as Jenkins and Grafana do. With the backup root
in an object store the password is printed only when it is made (it is
stored nowhere; later starts say so). The login page calls
:func:`prepare` too (for ``streamlit run app.py`` started by hand) and prints
the same text only if it created the password itself. Nothing here imports
Streamlit, and a failure never stops the dashboard from starting.
"""

from __future__ import annotations

import sys

from backup_core import auth


def prepare(settings) -> tuple[bool, auth.InitialPassword | None]:
    """(demo admin created now, pending one-time password or None).

    In the embedded demo only, ``BACKUP_DEMO_ADMIN_PASSWORD`` makes ``admin``
    with that password instead of a one-time password.
    """
    if settings.demo_admin_password and settings.embedded and not auth.has_users(settings):
        auth.set_password(settings.with_user("demo-setup"), auth.INITIAL_ADMIN, settings.demo_admin_password,
                          "admin")
        return True, None
    return False, auth.ensure_initial_admin(settings.with_user("first-start"))


def main() -> int:
    from backup_core.config import Settings

    try:
        demo, initial = prepare(Settings.load())
    except Exception as exc:  # noqa: BLE001 - the dashboard starts anyway and its login page explains
        print(f"note: cannot prepare the first login: {exc}", file=sys.stderr, flush=True)
        return 0
    if demo:
        print("Demo mode: created the dashboard user admin with the password from BACKUP_DEMO_ADMIN_PASSWORD.",
              flush=True)
    elif initial is not None:
        print(initial.console_text(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
