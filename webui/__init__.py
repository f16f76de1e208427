"""The Streamlit side of the product: the backup UI's sections and the dashboard built from them.

``backup_restore_ui`` and ``start_auto_backup`` (``webui.embed``) put the
backup UI into a host Streamlit app; the product's own dashboard (``app.py``
and ``pages/``) draws the same sections (``webui.sections``). Nothing in
``backup_core`` imports this package. The two names are loaded on first use,
so ``python -m webui.first_start`` (run before Streamlit starts) does not
import Streamlit. It needs Streamlit, which the core does not: installed as a
dependency of another project, it comes with the ``ui`` extra.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("streamlit") is None:  # (find_spec: no import, so first_start stays fast)
    raise ModuleNotFoundError("the dashboard and the embeddable backup tab (package webui) need Streamlit: "
                              "pip install 'mongo-backup-dashboard[ui]'", name="streamlit")

__all__ = ["backup_restore_ui", "start_auto_backup"]


def __getattr__(name: str):
    if name in __all__:
        from webui import embed

        return getattr(embed, name)
    raise AttributeError(f"module 'webui' has no attribute {name!r}")

